#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "collectives/nccl_real.h"
#include "util/log.h"

static cp_nccl_real_t cp_real;
static pthread_once_t cp_real_once = PTHREAD_ONCE_INIT;
static void *cp_nccl_handle;

/* Finds the libnccl already loaded in the process, wherever it came from.
 * Python loads extension modules RTLD_LOCAL, so PyTorch's libnccl is in no
 * global scope: neither RTLD_NEXT nor RTLD_DEFAULT sees it. */
static int find_nccl(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    const char *base = strrchr(info->dlpi_name, '/');
    base = base ? base + 1 : info->dlpi_name;
    if (strncmp(base, "libnccl.so", 10) != 0)
        return 0;
    cp_nccl_handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    return cp_nccl_handle != NULL;
}

static void *resolve(const char *name)
{
    char alias[64];
    void *f = dlsym(RTLD_NEXT, name);
    snprintf(alias, sizeof(alias), "p%s", name);
    if (f == NULL)
        f = dlsym(RTLD_DEFAULT, alias);
    if (f == NULL && cp_nccl_handle)
        f = dlsym(cp_nccl_handle, alias);
    return f;
}

static void resolve_all(void)
{
    dl_iterate_phdr(find_nccl, NULL);
#define R(field) *(void **)&cp_real.field = resolve("nccl" #field)
    R(AllReduce);
    R(AllGather);
    R(Send);
    R(Recv);
    R(GroupStart);
    R(GroupEnd);
    R(CommCount);
    R(CommUserRank);
    R(CommCuDevice);
    R(CommInitRank);
    R(CommInitRankConfig);
    R(CommDestroy);
    R(CommAbort);
#ifdef CP_HAVE_NCCL_GROUP_SIMULATE
    R(GroupSimulateEnd);
#endif
#undef R
    if (cp_real.AllReduce == NULL)
        cp_warn("the real NCCL was not found in the process: every nccl* "
                "call commpress intercepts will fail with ncclSystemError");
}

/* Resolved at the first intercepted call: by then the caller has loaded
 * libnccl (the call came from code linked against it). */
const cp_nccl_real_t *cp_nccl_real(void)
{
    pthread_once(&cp_real_once, resolve_all);
    return &cp_real;
}
