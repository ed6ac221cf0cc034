#include <string.h>

#include "compressors/feedback.h"

/* Adding a variant (EF21, EControl): one new file and one line here. */
static const cp_feedback_ops_t *const cp_feedbacks[] = {
    &cp_feedback_none,
    &cp_feedback_ef,
    &cp_feedback_dgc,
    &cp_feedback_ef21,
    &cp_feedback_econtrol,
    &cp_feedback_ef21_sgdm,
};

const cp_feedback_ops_t *cp_feedback_find(const char *name)
{
    for (size_t i = 0; i < sizeof(cp_feedbacks) / sizeof(*cp_feedbacks); i++)
        if (strcmp(cp_feedbacks[i]->name, name) == 0)
            return cp_feedbacks[i];
    return NULL;
}

const char *cp_feedback_names(void) { return "none | ef | dgc | ef21 | econtrol | ef21-sgdm"; }
