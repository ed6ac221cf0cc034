#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/fault.h"

#define MAX_FAULTS 8

typedef struct {
    cp_fault_kind_t kind;
    int rank;
    long long call;
    atomic_int fired;
} cp_fault_spec_t;

static const char *const kind_names[CP_FAULT_KINDS] = {
    "alloc", "wsalloc", "encode", "corrupt1", "corrupt", "diverge"};
static cp_fault_spec_t faults[MAX_FAULTS];
static int nfaults;
static int fault_rank = -1;
static atomic_llong fault_call = -1;

static int parse_one(const char *s, size_t len, cp_fault_spec_t *f)
{
    char buf[64], *at, *colon, *end;
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    at = strchr(buf, '@');
    colon = at ? strchr(at, ':') : NULL;
    if (at == NULL || colon == NULL)
        return -1;
    *at = *colon = '\0';
    int k = 0;
    while (k < CP_FAULT_KINDS && strcmp(buf, kind_names[k]) != 0)
        k++;
    if (k == CP_FAULT_KINDS)
        return -1;
    long r = strtol(at + 1, &end, 10);
    if (end == at + 1 || *end || r < 0)
        return -1;
    long long c = strtoll(colon + 1, &end, 10);
    if (end == colon + 1 || *end || c < 0)
        return -1;
    f->kind = (cp_fault_kind_t)k;
    f->rank = (int)r;
    f->call = c;
    atomic_store(&f->fired, 0);
    return 0;
}

static int parse_all(const char *spec, cp_fault_spec_t *out)
{
    int n = 0;
    while (spec && *spec) {
        size_t len = strcspn(spec, ",");
        if (n == MAX_FAULTS || parse_one(spec, len, &out[n]) != 0)
            return -1;
        n++;
        spec += len + (spec[len] == ',');
    }
    return n;
}

cp_status_t cp_fault_check(const char *spec)
{
    cp_fault_spec_t tmp[MAX_FAULTS];
    return parse_all(spec, tmp) < 0 ? CP_ERR_CONFIG : CP_OK;
}

cp_status_t cp_fault_configure(const char *spec)
{
    int n = parse_all(spec, faults);
    nfaults = n < 0 ? 0 : n;
    return n < 0 ? CP_ERR_CONFIG : CP_OK;
}

void cp_fault_set_rank(int rank) { fault_rank = rank; }

void cp_fault_tick(void)
{
    if (nfaults)
        atomic_fetch_add(&fault_call, 1);
}

int cp_fault(cp_fault_kind_t kind)
{
    for (int i = 0; i < nfaults; i++) {
        cp_fault_spec_t *f = &faults[i];
        if (f->kind == kind && f->rank == fault_rank &&
            f->call == atomic_load(&fault_call) &&
            atomic_exchange(&f->fired, 1) == 0)
            return 1;
    }
    return 0;
}
