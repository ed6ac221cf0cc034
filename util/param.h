/* One configuration row (UCX's ucs_config_field_t in spirit): a variable's
 * name, default, type, where it lives, what it accepts and what it means.
 * Every COMMPRESS_* variable is such a row: the plugin's own, and those
 * each codec and feedback variant declares in its file
 * (compressors/compressor.h, feedback.h). Parsing, validation, printing,
 * the documentation table and the cross-rank hash all read these rows. */
#ifndef CP_PARAM_H
#define CP_PARAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CP_PT_ENUM,   /* int: the index of a choice */
    CP_PT_DOUBLE,
    CP_PT_FLOAT,  /* parsed as a double, stored as a float */
    CP_PT_SIZE,   /* size_t */
    CP_PT_INT,
    CP_PT_U64,
    CP_PT_STRING, /* char[hi] */
} cp_ptype_t;

enum { CP_OPEN_LO = 1, CP_OPEN_HI = 2 };

typedef struct cp_param {
    const char *name;
    const char *dflt;              /* as a string */
    cp_ptype_t type;
    size_t offset;                 /* into the struct the row belongs to */
    const char *const *choices;    /* ENUM: NULL-terminated, or */
    const char *(*choice)(int i);  /* ENUM: the i-th, NULL past the end */
    double lo, hi;                 /* numbers: inclusive range; STRING:
                                      hi is the buffer's size */
    int open;                      /* CP_OPEN_LO, CP_OPEN_HI: bound excluded */
    int must_match;                /* the same on every rank */
    int cpu_only;                  /* a value other than the default runs
                                      on the MPI (CPU) path only */
    const char *doc;
    const char *accepted;          /* STRING: what it accepts, in words */
    int (*check)(const char *s);   /* STRING: 0 when well formed */
} cp_param_t;

/* The i-th choice of an ENUM row, NULL past the end. */
const char *cp_param_choice(const cp_param_t *r, int i);
/* Parses s into the row's place in base; 0, or -1 when s is not
 * accepted (nothing written). Leading and trailing whitespace is ignored;
 * integers are digits only (no sign, no overflow: "-1" is refused, never
 * read as 2^64 - 1). */
int cp_param_parse(const cp_param_t *r, const char *s, void *base);
/* The canonical text of the value (equal values, equal text). */
void cp_param_format(const cp_param_t *r, const void *base, char *buf,
                     size_t len);
/* What the row accepts, for messages and documentation. */
void cp_param_accepted(const cp_param_t *r, char *buf, size_t len);
/* Nonzero when the value in base is the row's default. */
int cp_param_is_default(const cp_param_t *r, const void *base);

#ifdef __cplusplus
}
#endif

#endif
