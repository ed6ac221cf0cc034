#include <string.h>

#include "compressors/feedback.h"

/* Adding a variant: its file, which defines cp_feedback_<name> and
 * describes it (compressors/feedback.h), and one line here. The order is
 * the order of COMMPRESS_FEEDBACK's choices and of the documentation. */
#define CP_VARIANTS(X)                                                       \
    X(none)                                                                  \
    X(ef)                                                                    \
    X(ef21)                                                                  \
    X(econtrol)                                                              \
    X(ef21_sgdm)                                                             \
    X(dgc)

#define CP_DECLARE(name) extern const cp_feedback_ops_t cp_feedback_##name;
#define CP_ENTRY(name) &cp_feedback_##name,
CP_VARIANTS(CP_DECLARE)
static const cp_feedback_ops_t *const cp_feedbacks[] = {CP_VARIANTS(CP_ENTRY)};
#define NFEEDBACKS (sizeof(cp_feedbacks) / sizeof(*cp_feedbacks))
_Static_assert(NFEEDBACKS <= CP_MAX_FEEDBACKS, "raise CP_MAX_FEEDBACKS");

size_t cp_feedback_count(void) { return NFEEDBACKS; }

const cp_feedback_ops_t *cp_feedback_at(size_t i)
{
    return i < NFEEDBACKS ? cp_feedbacks[i] : NULL;
}

int cp_feedback_index(const char *name)
{
    for (size_t i = 0; i < NFEEDBACKS; i++)
        if (strcmp(cp_feedbacks[i]->name, name) == 0)
            return (int)i;
    return -1;
}

const cp_feedback_ops_t *cp_feedback_find(const char *name)
{
    int i = cp_feedback_index(name);
    return i < 0 ? NULL : cp_feedbacks[i];
}
