#include "util/status.h"

const char *cp_status_string(cp_status_t status)
{
    switch (status) {
#define CP_STATUS_CASE(name, value, text) case name: return text;
        CP_STATUS_MAP(CP_STATUS_CASE)
#undef CP_STATUS_CASE
    }
    return "unknown status";
}
