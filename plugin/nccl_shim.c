/* NCCL interception: ncclAllReduce of float32, float16 and bfloat16 with
 * ncclSum or ncclAvg above the size threshold runs compressed on the GPU;
 * everything else goes to the real NCCL unchanged, and NCCL's own errors are
 * returned as they are. Also intercepted: group start/end (calls inside a
 * group pass through: NCCL fuses them, commpress would not), communicator
 * init (the configuration is checked across ranks: an invalid one on any
 * rank stops every rank there), destroy and abort (the communicator's
 * state is released after the real call, never under a lock).
 *
 * Threads: a communicator's state is found under cp_nccl_lock and used
 * with a reference held (NCCL lets one thread at a time call on a
 * communicator, but PyTorch's watchdog may abort it from another): abort
 * and destroy unlink it at once and the last reference frees it. Nothing
 * slow (a device allocation or free) runs under the lock, and each state
 * reports its own bytes (plugin/stats.h): no list is walked to read other
 * threads' states.
 *
 * Every rank makes the same calls, so every decision that shapes what goes
 * on the wire here is taken from the call alone. Tensor state is named as
 * on the MPI path (plugin/step_detect.h). With none and ef, a tensor's
 * state changes no decision, only its own error feedback: each rank's own
 * buffer evidence then helps name it (the GPU path does not exchange
 * evidence), names may differ across ranks, a rank over
 * COMMPRESS_MAX_STATE_BYTES drops state on its own, and a rank that cannot
 * allocate a tensor's state runs the call without error feedback. With a
 * variant that has a GPU twin (DGC, EF21, EControl, EF21-SGDM) the state
 * decides what every rank must share (the warm-up density and the first
 * dense step count the tensor's calls; an estimator's result is its
 * state): names then come from the sequence of calls alone, the same on
 * every rank by construction, state is never dropped, and a rank that
 * cannot allocate it stops the job. A rank that cannot allocate the
 * workspace, which the exchange itself needs, stops the job with one line:
 * its peers would otherwise wait in the exchange for ever. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "collectives/allreduce_gpu.h"
#include "collectives/nccl_real.h"
#include "collectives/transport_nccl.h"
#include "plugin/addr_seen.h"
#include "plugin/runtime.h"
#include "plugin/stats.h"
#include "plugin/step_detect.h"
#include "plugin/tensor_table.h"
#include "util/log.h"

typedef struct cp_nccl_state {
    ncclComm_t comm;
    int device;
    cp_nccl_ctx_t ctx;
    cp_transport_t tp;
    cp_gpu_ws_t ws;
    cp_tensor_table_t tensors;
    int detect;
    cp_stepdet_t det;
    cp_addrseen_t seen;
    cp_gpu_tensor_t stateless; /* for a call whose state could not be made */
    uint64_t calls;
    cudaEvent_t done;         /* end of the last compressed call */
    cudaStream_t last_stream;
    size_t limit;             /* COMMPRESS_MAX_STATE_BYTES on the device */
    size_t charged;           /* bytes reported to the process's total */
    int refs;                 /* cp_nccl_lock: the list's + calls in flight */
    struct cp_nccl_state *next;
} cp_nccl_state_t;

static pthread_mutex_t cp_nccl_lock = PTHREAD_MUTEX_INITIALIZER;
static cp_nccl_state_t *cp_nccl_states;
static __thread int cp_group_depth;
static int cp_warned_capture;

static void gpu_tensor_free(void *t) { cp_gpu_tensor_destroy(t); }

/* Whether a tensor's state decides what every rank must share (see the
 * top): the feedback variant has a GPU twin. */
static int state_shared(void)
{
    return cp_runtime_coll()->feedback->gpu != NULL;
}

/* A rank that cannot go on with its peers: one line, and the job stops
 * (the launcher ends the other ranks) rather than hang. */
static void fatal(const char *what, ncclComm_t comm)
{
    int rank = -1;
    cp_nccl_real()->CommUserRank(comm, &rank);
    fprintf(stderr, "commpress: error: rank %d: %s; its peers would wait for "
                    "it for ever, stopping\n", rank, what);
    fflush(stderr);
    exit(1);
}

/* The state's device bytes, and reporting them to the process's total. */
static size_t state_bytes(const cp_nccl_state_t *s)
{
    return s->tensors.bytes + cp_gpu_ws_bytes(&s->ws);
}

static void state_account(cp_nccl_state_t *s)
{
    const size_t b = state_bytes(s);
    if (b != s->charged)
        cp_stats_state_charge(CP_STATS_PART_NCCL, &s->charged, b);
}

/* Under cp_nccl_lock. */
static cp_nccl_state_t *state_find(ncclComm_t comm)
{
    for (cp_nccl_state_t *s = cp_nccl_states; s; s = s->next)
        if (s->comm == comm)
            return s;
    return NULL;
}

/* By the holder of the last reference, on the state's device; the
 * communicator may be gone (the real destroy or abort came first). */
static void state_free(cp_nccl_state_t *s)
{
    const int dev = s->device;
    int cur = -1;
    cudaGetDevice(&cur);
    if (dev >= 0 && cur != dev)
        cudaSetDevice(dev);
    cp_stats_state_charge(CP_STATS_PART_NCCL, &s->charged, 0);
    cp_tensor_table_fini(&s->tensors); /* cudaFree waits for the work */
    cp_gpu_ws_free(&s->ws);
    cudaFree(s->stateless.steps);
    if (s->done)
        cudaEventDestroy(s->done);
    cp_stepdet_fini(&s->det);
    cp_addrseen_fini(&s->seen);
    free(s);
    if (dev >= 0 && cur >= 0 && cur != dev)
        cudaSetDevice(cur);
}

static void state_put(cp_nccl_state_t *s)
{
    pthread_mutex_lock(&cp_nccl_lock);
    const int last = --s->refs == 0;
    pthread_mutex_unlock(&cp_nccl_lock);
    if (last)
        state_free(s);
}

/* Made outside the lock (device allocations may wait on the device). */
static cp_nccl_state_t *state_create(ncclComm_t comm)
{
    const cp_nccl_real_t *R = cp_nccl_real();
    const cp_config_t *cfg = cp_runtime_config();
    size_t dev_free = 0, dev_total = 0;
    cp_nccl_state_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->device = -1;
    s->comm = comm;
    s->ctx.comm = comm;
    s->detect = cfg->state_key == CP_KEY_AUTO;
    if (R->CommCuDevice(comm, &s->device) != ncclSuccess ||
        cp_transport_nccl_init(&s->tp, &s->ctx) != CP_OK ||
        cp_tensor_table_init(&s->tensors, cfg->max_tensors, gpu_tensor_free) != CP_OK ||
        (s->detect && (cp_stepdet_init(&s->det, cfg->max_tensors) != CP_OK ||
                       cp_addrseen_init(&s->seen, s->det.W) != CP_OK)) ||
        cudaMalloc((void **)&s->stateless.steps, sizeof(uint64_t)) != cudaSuccess ||
        cudaMemset(s->stateless.steps, 0, sizeof(uint64_t)) != cudaSuccess ||
        cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming) !=
            cudaSuccess) {
        state_free(s);
        return NULL;
    }
    cudaMemGetInfo(&dev_free, &dev_total);
    s->limit = cp_config_state_limit(cfg, dev_total ? dev_total : (size_t)1 << 34, 1);
    return s;
}

/* The communicator's state with a reference held (state_put ends it),
 * made at its first compressed call; NULL when out of memory. */
static cp_nccl_state_t *state_get(ncclComm_t comm)
{
    pthread_mutex_lock(&cp_nccl_lock);
    cp_nccl_state_t *s = state_find(comm);
    if (s)
        s->refs++;
    pthread_mutex_unlock(&cp_nccl_lock);
    if (s)
        return s;
    cp_nccl_state_t *n = state_create(comm);
    if (n == NULL)
        return NULL;
    pthread_mutex_lock(&cp_nccl_lock);
    s = state_find(comm); /* only this communicator's thread creates it */
    if (s == NULL) {
        s = n;
        s->refs = 1; /* the list's */
        s->next = cp_nccl_states;
        cp_nccl_states = s;
    }
    s->refs++;
    pthread_mutex_unlock(&cp_nccl_lock);
    if (s != n)
        state_free(n);
    return s;
}

/* Unlinks the communicator's state (its list reference goes to the
 * caller, for state_put after the real call); NULL if it has none. */
static cp_nccl_state_t *state_detach(ncclComm_t comm)
{
    pthread_mutex_lock(&cp_nccl_lock);
    cp_nccl_state_t *s = NULL;
    for (cp_nccl_state_t **p = &cp_nccl_states; *p; p = &(*p)->next)
        if ((*p)->comm == comm) {
            s = *p;
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&cp_nccl_lock);
    return s;
}

/* COMMPRESS_MAX_STATE_BYTES on the device, after a new tensor's state was
 * made: the least recently used others lose theirs. A local choice here:
 * on the GPU a tensor's state changes no decision (see the top). */
static void state_bound(cp_nccl_state_t *s, const void *keep)
{
    const size_t total = cp_stats_state_with(CP_STATS_PART_NCCL, s->charged,
                                             state_bytes(s));
    if (state_shared()) {
        /* Dropping would reset one rank's warm-up or estimator alone. */
        if (total > s->limit)
            cp_warn_rl("COMMPRESS_MAX_STATE_BYTES=%zu is exceeded, but with "
                       "COMMPRESS_FEEDBACK=%s a tensor's state is shared "
                       "by every rank and is kept (raise the bound)",
                       s->limit, cp_runtime_coll()->feedback->name);
        return;
    }
    int over;
    cp_stats_add_dropped(cp_tensor_table_fit(&s->tensors, total, s->limit, keep, &over));
    if (over)
        cp_warn_rl("COMMPRESS_MAX_STATE_BYTES=%zu is below what this GPU's "
                "newest tensor needs with the other states and workspaces: "
                "its state is kept (raise the bound)", s->limit);
}

/* The configuration, with what the GPU path cannot run refused at once:
 * one generic check of the registries (a codec or feedback variant with
 * no GPU twin, a setting marked MPI-only). */
/* This process's configuration: 0, or -1 with the one-line reason (an
 * invalid variable, or a setting the GPU path cannot run). */
static int config_status(char *why, size_t len)
{
    if (cp_runtime_load(why, len) != CP_OK)
        return -1;
    return cp_coll_gpu_refusal((cp_coll_settings_t *)&cp_runtime_config()->coll,
                               why, len) != NULL
               ? -1
               : 0;
}

/* Stops the process with the configuration's one line. */
static void stop(const char *why)
{
    fprintf(stderr, "commpress: error: %s\n", why);
    fflush(stderr);
    exit(1);
}

static void nccl_load_or_exit(void)
{
    char why[512];
    if (config_status(why, sizeof(why)) != 0)
        stop(why);
}

static int dtype_of(ncclDataType_t t, cp_dtype_t *d, int *size)
{
    switch (t) {
    case ncclFloat32: *d = CP_DT_F32; *size = 4; return 1;
    case ncclFloat16: *d = CP_DT_F16; *size = 2; return 1;
#if NCCL_MAJOR > 2 || (NCCL_MAJOR == 2 && NCCL_MINOR >= 10)
    case ncclBfloat16: *d = CP_DT_BF16; *size = 2; return 1;
#endif
    default: return 0;
    }
}

static size_t elem_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: return 2;
#if NCCL_MAJOR > 2 || (NCCL_MAJOR == 2 && NCCL_MINOR >= 10)
    case ncclBfloat16: return 2;
#endif
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 4;
    }
}

/* The name of a call's tensor (plugin/step_detect.h, with this rank's
 * own buffer evidence), the detector's remap applied to the table. */
static uint64_t name_call(cp_nccl_state_t *s, const void *buf, size_t count,
                          uint32_t kind)
{
    const cp_config_t *cfg = cp_runtime_config();
    const uint64_t call = s->calls++, sig = cp_stepdet_sig(count, kind);
    cp_sd_action_t act;
    if (cfg->state_key == CP_KEY_ORDER)
        return call % cfg->step_calls;
    if (cfg->state_key == CP_KEY_ADDRESS)
        return (uintptr_t)buf;
    uint64_t id = cp_stepdet_next(&s->det, sig, &act);
    if (act.remap)
        cp_tensor_table_remap(&s->tensors, act.renames, act.nrenames);
    if (act.events & (CP_SD_LOCKED | CP_SD_RELOCKED | CP_SD_UPGRADED))
        cp_info("NCCL: step of %zu compressed calls found", act.period);
    /* This rank's own buffer evidence only where names may differ. */
    uint64_t ev = state_shared() ? 0
                                 : cp_addrseen_note(&s->seen, (uintptr_t)buf, sig,
                                                    call, s->det.maxp);
    size_t P = act.period;
    cp_stepdet_evidence(&s->det, P && ev >= 2 * (uint64_t)P && ev % P == 0 ? ev : 0);
    return id;
}

/* Compressed allreduce; -1 sends the call to NCCL unchanged after all. */
static int compressed(const void *sendbuff, void *recvbuff, size_t count,
                      cp_dtype_t dt, int dsize, ncclRedOp_t op, ncclComm_t comm,
                      cudaStream_t stream)
{
    const cp_coll_config_t *coll = cp_runtime_coll();
    cp_nccl_state_t *s;
    cp_gpu_tensor_t *t;
    cp_coll_result_t res;
    enum cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    int cur, rc = -1, created = 0;

    int nranks;
    if (cp_nccl_real()->CommCount(comm, &nranks) != ncclSuccess ||
        (size_t)nranks < cp_runtime_config()->min_ranks)
        return -1; /* no state for communicators that never compress */
    s = state_get(comm);
    if (s == NULL)
        fatal("out of memory for commpress's state of an NCCL communicator",
              comm);
    cudaGetDevice(&cur);
    if (cur != s->device)
        cudaSetDevice(s->device);
    cudaStreamIsCapturing(stream, &cap);
    uint32_t kind = (uint32_t)dt + 1;
    uint64_t key = name_call(s, sendbuff, count, kind);
    t = cp_tensor_table_find(&s->tensors, key, count, kind);
    if (t == NULL) {
        /* Allocating is not allowed while a stream is being captured (every
         * rank captures the same calls, so all pass this one through); an
         * allocation may fail: then this call runs without error feedback
         * (the same exchange as its peers'), and a later call makes the
         * state. */
        if (cap != cudaStreamCaptureStatusNone) {
            if (__atomic_fetch_add(&cp_warned_capture, 1, __ATOMIC_RELAXED) == 0)
                cp_warn("ncclAllReduce of a new tensor during CUDA graph "
                        "capture: sent uncompressed (run one step before "
                        "capturing)");
            goto out;
        }
        if (cp_gpu_tensor_create(coll, count, s->tp.size, s->tp.rank,
                                 stream, &t) == CP_OK) {
            cp_tensor_table_insert(&s->tensors, key, count, kind, t,
                                   cp_gpu_tensor_bytes(t));
            state_bound(s, t);
            created = 1;
        } else {
            t = NULL;
            cudaGetLastError(); /* the failed allocation's error is handled */
            if (state_shared())
                fatal("out of GPU memory for a tensor's feedback state, which "
                      "every rank's result depends on", comm);
            cp_warn_rl("out of GPU memory for the state of a tensor of %zu "
                    "elements: sent without error feedback", count);
        }
        if (t == NULL) {
            s->stateless.count = count;
            t = &s->stateless;
        }
    }
    /* Calls on one communicator may come on different streams: the
     * workspace is shared, so order each call after the previous one. */
    if (s->last_stream != NULL && s->last_stream != stream)
        cudaStreamWaitEvent(stream, s->done, 0);
    s->ctx.stream = stream;
    cp_gpu_args_t a = {.send = sendbuff, .recv = recvbuff, .count = count,
                       .dtype = dt, .avg = op == ncclAvg, .tensor = t,
                       .cfg = coll, .ws = &s->ws, .tp = &s->tp,
                       .stream = stream};
    cp_status_t st = cp_gpu_allreduce(&a, &res);
    cudaEventRecord(s->done, stream);
    s->last_stream = stream;
    if (st == CP_ERR_NOMEM)
        fatal("out of GPU memory for the compression workspace", comm);
    if (st != CP_OK) {
        cp_warn_rl("compressed ncclAllReduce of %zu elements failed: %s", count,
                cp_status_string(st));
        /* NCCL's own error unchanged; a CUDA failure as NCCL reports it. */
        rc = st == CP_ERR_TRANSPORT ? (int)cp_transport_nccl_last_error()
                                    : ncclUnhandledCudaError;
        goto out;
    }
    cp_stats_add_compressed(&res);
    if (created) /* state and workspace grow only with a new tensor */
        state_account(s);
    (void)dsize;
    rc = ncclSuccess;
out:
    if (cur != s->device)
        cudaSetDevice(cur);
    state_put(s);
    return rc;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream)
{
    const cp_nccl_real_t *R = cp_nccl_real();
    cp_dtype_t dt;
    int dsize, n = 0;

    if (R->AllReduce == NULL)
        return ncclSystemError; /* no NCCL beneath us */
    nccl_load_or_exit();
    const cp_config_t *cfg = cp_runtime_config();
    if (!(cp_runtime_coll()->codec->caps & CP_CODEC_IDENTITY) && cp_group_depth == 0 &&
        (op == ncclSum || op == ncclAvg) && dtype_of(datatype, &dt, &dsize) &&
        count > 0 && count * (size_t)dsize >= cfg->min_bytes &&
        count <= (size_t)INT32_MAX) {
        int rc = compressed(sendbuff, recvbuff, count, dt, dsize, op, comm,
                            stream);
        if (rc >= 0)
            return (ncclResult_t)rc;
    }
    if (R->CommCount(comm, &n) != ncclSuccess)
        n = 1;
    cp_stats_add_passthrough(cp_ring_bytes(n, (double)count * (double)elem_size(datatype)));
    return R->AllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream);
}

/* An entry point whose real function was not found fails, never crashes. */
#define CP_REAL_OR_FAIL(f)                                                  \
    do {                                                                    \
        if (cp_nccl_real()->f == NULL)                                      \
            return ncclSystemError;                                         \
    } while (0)

ncclResult_t ncclGroupStart(void)
{
    CP_REAL_OR_FAIL(GroupStart);
    ncclResult_t r = cp_nccl_real()->GroupStart();
    if (r == ncclSuccess)
        cp_group_depth++;
    return r;
}

ncclResult_t ncclGroupEnd(void)
{
    CP_REAL_OR_FAIL(GroupEnd);
    if (cp_group_depth > 0)
        cp_group_depth--;
    return cp_nccl_real()->GroupEnd();
}

#ifdef CP_HAVE_NCCL_GROUP_SIMULATE
/* Ends a group as ncclGroupEnd does (without running it): the depth that
 * decides whether a call is inside a group must follow. */
ncclResult_t ncclGroupSimulateEnd(ncclSimInfo_t *simInfo)
{
    CP_REAL_OR_FAIL(GroupSimulateEnd);
    if (cp_group_depth > 0)
        cp_group_depth--;
    return cp_nccl_real()->GroupSimulateEnd(simInfo);
}
#endif

/* The configuration must be valid on every rank of a new communicator and
 * equal across them: one allreduce (max) carries which rank's is invalid
 * (the lowest) and per-variable hashes h and ~h, as at MPI_Init. A rank
 * with an invalid configuration joins the communicator first, so its
 * peers learn of it here instead of waiting for it in NCCL's bootstrap:
 * every rank stops, after the lowest such rank printed its reason. */
static void check_config(ncclComm_t comm, int bad, const char *why)
{
    uint64_t h[CP_CONFIG_MAX_FIELDS], v[1 + 2 * CP_CONFIG_MAX_FIELDS];
    const char *names[CP_CONFIG_MAX_FIELDS];
    cp_nccl_ctx_t ctx = {.comm = comm};
    cp_transport_t tp;
    size_t nf = cp_config_hashes(cp_runtime_config(), h, names);

    if (cp_transport_nccl_init(&tp, &ctx) != CP_OK) {
        if (bad)
            stop(why);
        return;
    }
    cp_log_set_rank(tp.rank);
    v[0] = bad ? (uint64_t)(INT32_MAX - tp.rank) + 1 : 0;
    for (size_t i = 0; i < nf; i++) {
        v[1 + i] = h[i];
        v[1 + nf + i] = ~h[i];
    }
    if (tp.ops->allreduce_max_u64(tp.ctx, v, 1 + 2 * nf) != CP_OK) {
        if (bad)
            stop(why);
        cp_warn("configuration check over NCCL failed; continuing unchecked");
        return;
    }
    if (v[0] != 0) {
        char peer[160];
        if (bad && (uint64_t)(INT32_MAX - tp.rank) + 1 == v[0])
            stop(why); /* the lowest invalid rank says why */
        if (bad) /* another invalid rank said it */
            exit(1);
        snprintf(peer, sizeof(peer), "rank %d: a peer's COMMPRESS_* "
                 "configuration is invalid (rank %d printed why); stopping",
                 tp.rank, (int)(INT32_MAX - (int64_t)(v[0] - 1)));
        stop(peer);
    }
    char line[1024];
    if (!cp_config_mismatches(cp_runtime_config(), h, names, nf, v + 1,
                              v + 1 + nf, line, sizeof(line)))
        return;
    if (tp.rank == 0)
        fprintf(stderr, "commpress: error: configuration differs across ranks "
                        "in %s; every rank must run with the same COMMPRESS_* "
                        "settings\n", line);
    fflush(stderr);
    exit(1);
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id,
                              int rank)
{
    char why[512];
    CP_REAL_OR_FAIL(CommInitRank);
    const int bad = config_status(why, sizeof(why));
    ncclResult_t r = cp_nccl_real()->CommInitRank(comm, nranks, id, rank);
    if (r == ncclSuccess)
        check_config(*comm, bad, why);
    else if (bad)
        nccl_load_or_exit(); /* prints the reason and stops */
    return r;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                    ncclUniqueId id, int rank,
                                    ncclConfig_t *config)
{
    char why[512];
    CP_REAL_OR_FAIL(CommInitRankConfig);
    const int bad = config_status(why, sizeof(why));
    ncclResult_t r =
        cp_nccl_real()->CommInitRankConfig(comm, nranks, id, rank, config);
    /* A non-blocking init returns ncclInProgress: not checked (docs/gpu.md;
     * an invalid configuration then stops the process at its first
     * ncclAllReduce). */
    if (r == ncclSuccess)
        check_config(*comm, bad, why);
    else if (bad)
        nccl_load_or_exit();
    return r;
}

/* Destroy and abort: the state leaves the list first (a new communicator
 * at the same address must not find it), the real call runs, then the
 * state is freed, by the last call still using it if one is in flight.
 * Abort thus never waits for commpress: not for a lock held by a blocked
 * call, not for a device free before NCCL has stopped its kernels. */
ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    CP_REAL_OR_FAIL(CommDestroy);
    cp_nccl_state_t *s = state_detach(comm);
    ncclResult_t r = cp_nccl_real()->CommDestroy(comm);
    if (s)
        state_put(s);
    return r;
}

ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    CP_REAL_OR_FAIL(CommAbort);
    cp_nccl_state_t *s = state_detach(comm);
    ncclResult_t r = cp_nccl_real()->CommAbort(comm);
    if (s)
        state_put(s);
    return r;
}
