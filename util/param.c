#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/param.h"

const char *cp_param_choice(const cp_param_t *r, int i)
{
    if (r->choice)
        return r->choice(i);
    for (int k = 0; r->choices && r->choices[k]; k++)
        if (k == i)
            return r->choices[k];
    return NULL;
}

/* A value with its leading and trailing whitespace removed (" 4 " is 4);
 * -1 if it does not fit. */
static int trimmed(const char *s, char *buf, size_t len)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= len)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int parse_double(const cp_param_t *r, const char *s, double *d)
{
    char *end;
    errno = 0;
    if (*s == '\0')
        return -1;
    *d = strtod(s, &end);
    return errno || end == s || *end || !isfinite(*d) || *d > r->hi ||
                   *d < r->lo || ((r->open & CP_OPEN_LO) && *d == r->lo) ||
                   ((r->open & CP_OPEN_HI) && *d == r->hi)
               ? -1
               : 0;
}

static int parse_integer(const cp_param_t *r, const char *s,
                         unsigned long long *v)
{
    char *end;
    errno = 0;
    /* Digits only: strtoull would take "-1" as 2^64 - 1 and "+1" as 1. */
    if (!isdigit((unsigned char)*s))
        return -1;
    *v = strtoull(s, &end, 10);
    if (errno /* ERANGE: beyond 2^64 - 1 */ || *end)
        return -1;
    return r->type != CP_PT_U64 && ((double)*v < r->lo || (double)*v > r->hi)
               ? -1
               : 0;
}

int cp_param_parse(const cp_param_t *r, const char *value, void *base)
{
    char *dst = (char *)base + r->offset;
    unsigned long long v;
    double d;
    const char *c;
    char s[1100];

    if (trimmed(value, s, sizeof(s)) != 0)
        return -1;

    switch (r->type) {
    case CP_PT_ENUM:
        for (int i = 0; (c = cp_param_choice(r, i)) != NULL; i++)
            if (strcasecmp(s, c) == 0) {
                *(int *)dst = i;
                return 0;
            }
        return -1;
    case CP_PT_DOUBLE:
    case CP_PT_FLOAT:
        if (parse_double(r, s, &d) != 0)
            return -1;
        if (r->type == CP_PT_FLOAT)
            *(float *)dst = (float)d;
        else
            *(double *)dst = d;
        return 0;
    case CP_PT_INT:
    case CP_PT_SIZE:
    case CP_PT_U64:
        if (parse_integer(r, s, &v) != 0)
            return -1;
        if (r->type == CP_PT_INT)
            *(int *)dst = (int)v;
        else if (r->type == CP_PT_SIZE)
            *(size_t *)dst = (size_t)v;
        else
            *(uint64_t *)dst = (uint64_t)v;
        return 0;
    case CP_PT_STRING:
        if (strlen(s) >= (size_t)r->hi || (r->check && r->check(s) != 0))
            return -1;
        strcpy(dst, s);
        return 0;
    }
    return -1;
}

/* The shortest decimal that reads back as the same value (0.1, not
 * 0.10000000000000001): distinct values stay distinct (hashes, messages). */
static void shortest(char *buf, size_t len, double v, int single)
{
    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)v : back == v)
            return;
    }
}

void cp_param_format(const cp_param_t *r, const void *base, char *buf,
                     size_t len)
{
    const char *src = (const char *)base + r->offset;
    const char *c;
    switch (r->type) {
    case CP_PT_ENUM:
        c = cp_param_choice(r, *(const int *)src);
        snprintf(buf, len, "%s", c ? c : "?");
        break;
    case CP_PT_DOUBLE:
        shortest(buf, len, *(const double *)src, 0);
        break;
    case CP_PT_FLOAT:
        shortest(buf, len, (double)*(const float *)src, 1);
        break;
    case CP_PT_INT:
        snprintf(buf, len, "%d", *(const int *)src);
        break;
    case CP_PT_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)src);
        break;
    case CP_PT_U64:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)src);
        break;
    case CP_PT_STRING:
        snprintf(buf, len, "%s", src);
        break;
    }
}

void cp_param_accepted(const cp_param_t *r, char *buf, size_t len)
{
    size_t off = 0;
    const char *c;
    buf[0] = '\0';
    switch (r->type) {
    case CP_PT_ENUM:
        for (int i = 0; (c = cp_param_choice(r, i)) != NULL && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s",
                                    i ? " | " : "", c);
        break;
    case CP_PT_DOUBLE:
    case CP_PT_FLOAT:
        snprintf(buf, len, "a number in %c%g, %g%c",
                 r->open & CP_OPEN_LO ? '(' : '[', r->lo, r->hi,
                 r->open & CP_OPEN_HI ? ')' : ']');
        break;
    case CP_PT_INT:
    case CP_PT_SIZE:
        snprintf(buf, len, "an integer in [%.0f, %.0f]", r->lo, r->hi);
        break;
    case CP_PT_U64:
        snprintf(buf, len, "an unsigned 64-bit integer");
        break;
    case CP_PT_STRING:
        snprintf(buf, len, "%s", r->accepted ? r->accepted : "a string");
        break;
    }
}

int cp_param_is_default(const cp_param_t *r, const void *base)
{
    char v[1100], d[1100];
    unsigned char tmp[1100];
    memset(tmp, 0, sizeof(tmp));
    cp_param_format(r, base, v, sizeof(v));
    /* The default, parsed into a scratch copy of the field's place. */
    cp_param_t at0 = *r;
    at0.offset = 0;
    if ((size_t)(r->type == CP_PT_STRING ? r->hi : 8) > sizeof(tmp) ||
        cp_param_parse(&at0, r->dflt, tmp) != 0)
        return 0;
    cp_param_format(&at0, tmp, d, sizeof(d));
    return strcmp(v, d) == 0;
}
