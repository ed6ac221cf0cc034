/* MPI interception: MPI_Init*, MPI_Allreduce(_c), MPI_Finalize. A
 * decorator in the shape of Open MPI's coll/sync: decide, then either run a
 * compressed collective or forward to PMPI_* unchanged. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/comm_state.h"
#include "plugin/runtime.h"
#include "plugin/stats.h"
#include "util/fault.h"
#include "util/log.h"

static pthread_mutex_t cp_lock = PTHREAD_MUTEX_INITIALIZER;
static int cp_inited;           /* configuration parsed and checked */
#define cp_cfg (*cp_runtime_config())
#define cp_coll (*cp_runtime_coll())
static int cp_keyval = MPI_KEYVAL_INVALID;
/* Every live comm state, for MPI_Finalize; cp_lock guards the links only.
 * A state itself is used by the one thread calling on its communicator
 * (MPI forbids concurrent collectives on one communicator), and its bytes
 * are reported to plugin/stats.c by that thread (cp_comm_state_account):
 * nothing walks the list to read other threads' states. */
static cp_comm_state_t *cp_states;
/* Marks a communicator on which commpress does nothing (some rank could
 * not create its state, or an intercommunicator): calls pass through. */
static cp_comm_state_t cp_disabled;
static size_t cp_host_limit; /* COMMPRESS_MAX_STATE_BYTES, resolved */

/* Called by MPI when a communicator with our attribute is freed. */
static int state_delete(MPI_Comm comm, int keyval, void *attr, void *extra)
{
    cp_comm_state_t *s = attr;
    (void)comm, (void)keyval, (void)extra;
    if (s == &cp_disabled)
        return MPI_SUCCESS;
    pthread_mutex_lock(&cp_lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        cp_states = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&cp_lock);
    cp_comm_state_destroy(s); /* its bytes leave the process's total */
    return MPI_SUCCESS;
}

/* The node's memory shared by the ranks on it: COMMPRESS_MAX_STATE_BYTES's
 * default (collective over comm). */
static size_t host_limit(MPI_Comm comm)
{
    MPI_Comm node;
    int local = 1;
    if (PMPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                             &node) == MPI_SUCCESS) {
        PMPI_Comm_size(node, &local);
        PMPI_Comm_free(&node);
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t mem = pages > 0 && page > 0 ? (size_t)pages * (size_t)page
                                       : (size_t)1 << 34;
    return cp_config_state_limit(&cp_cfg, mem, local);
}

/* Stops the job: every rank learns of the failure through `bad` being
 * agreed on beforehand, so none is left waiting in a collective. */
static void die(void)
{
    fflush(stdout);
    fflush(stderr);
    PMPI_Finalize();
    exit(1);
}

/* Parses the environment and checks it on comm; collective over comm.
 * On any rank's error, every rank exits non-zero after the lowest failing
 * rank printed one line. */
static void plugin_init(MPI_Comm comm)
{
    char err[512] = "";
    uint64_t v[1 + 2 * CP_CONFIG_MAX_FIELDS], h[CP_CONFIG_MAX_FIELDS];
    const char *names[CP_CONFIG_MAX_FIELDS];
    int rank, size, bad_cfg;
    size_t nf;

    PMPI_Comm_rank(comm, &rank);
    PMPI_Comm_size(comm, &size);
    cp_log_set_rank(rank);
    cp_fault_set_rank(rank);
    bad_cfg = cp_runtime_load(err, sizeof(err)) != CP_OK;
    nf = cp_config_hashes(&cp_cfg, h, names);
    /* One allreduce (max) carries both: which rank failed to parse (the
     * lowest), and per-field hashes h and ~h, equal on all ranks iff
     * max(h) == h and max(~h) == ~h everywhere. */
    v[0] = bad_cfg ? (uint64_t)(INT32_MAX - rank) + 1 : 0;
    for (size_t i = 0; i < nf; i++) {
        v[1 + i] = h[i];
        v[1 + nf + i] = ~h[i];
    }
    if (PMPI_Allreduce(MPI_IN_PLACE, v, (int)(1 + 2 * nf), MPI_UINT64_T,
                       MPI_MAX, comm) != MPI_SUCCESS) {
        cp_warn("configuration check failed in PMPI_Allreduce");
        die();
    }
    if (v[0] != 0) {
        if (bad_cfg && (uint64_t)(INT32_MAX - rank) + 1 == v[0])
            fprintf(stderr, "commpress: error: %s\n", err);
        die();
    }
    char line[1024];
    if (cp_config_mismatches(&cp_cfg, h, names, nf, v + 1, v + 1 + nf, line,
                             sizeof(line))) {
        if (rank == 0)
            fprintf(stderr,
                    "commpress: error: configuration differs across ranks "
                    "in %s; every rank must run with the same COMMPRESS_* "
                    "settings\n",
                    line);
        die();
    }

    cp_config_warn_unknown();
    if (rank == 0 && (cp_coll.codec->caps & CP_CODEC_IDENTITY) &&
        cp_cfg.debug >= CP_LOG_WARN)
        fprintf(stderr, "commpress: COMMPRESS_COMPRESSOR is %s: nothing is "
                        "compressed (exact pass-through)\n",
                getenv("COMMPRESS_COMPRESSOR") ? "none" : "unset");
    if (rank == 0 && cp_cfg.debug >= CP_LOG_INFO)
        cp_config_print(&cp_cfg, stderr, 0);
    cp_host_limit = host_limit(comm);
    if (rank == 0)
        cp_info("state bound: %zu bytes per process (COMMPRESS_MAX_STATE_BYTES)",
                cp_host_limit);
    PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, state_delete, &cp_keyval,
                            NULL);
    (void)size;
    cp_inited = 1;
}

int MPI_Init(int *argc, char ***argv)
{
    int rc = PMPI_Init(argc, argv);
    if (rc == MPI_SUCCESS)
        plugin_init(MPI_COMM_WORLD);
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int rc = PMPI_Init_thread(argc, argv, required, provided);
    if (rc == MPI_SUCCESS)
        plugin_init(MPI_COMM_WORLD);
    return rc;
}

/* Rank 0's INFO line at MPI_Finalize: the time compressing saved, as the
 * policy of each of its communicators estimated it (plugin/policy.h). */
static void policy_summary(void)
{
    double saved = 0;
    uint64_t calls = 0, n;
    int any = 0;
    pthread_mutex_lock(&cp_lock);
    for (cp_comm_state_t *s = cp_states; s; s = s->next)
        if (s->policy.on) {
            saved += cp_policy_saved(&s->policy, &n);
            calls += n;
            any = 1;
        }
    pthread_mutex_unlock(&cp_lock);
    if (any)
        cp_info("summary rank 0: COMMPRESS_POLICY=auto estimates that compressing saved "
                "%.3f s against plain MPI (%llu compressed calls of the size classes it "
                "measured, each at its last round's periods)",
                saved, (unsigned long long)calls);
}

int MPI_Finalize(void)
{
    int rank = 0, size = 1;
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    PMPI_Comm_size(MPI_COMM_WORLD, &size);
    if (cp_inited) {
        if (rank == 0) {
            cp_stats_print_summary(rank, cp_config_compressor_name(&cp_cfg));
            policy_summary();
        }
        if (cp_cfg.stats_file[0])
            cp_stats_write_json(cp_cfg.stats_file, rank, size,
                                cp_cfg.stats_every ? CP_STATS_FINAL : CP_STATS_OBJECT);
        /* Release every state; deleting the attribute runs state_delete.
         * (No other thread calls MPI once MPI_Finalize has begun.) */
        for (;;) {
            pthread_mutex_lock(&cp_lock);
            cp_comm_state_t *s = cp_states;
            pthread_mutex_unlock(&cp_lock);
            if (s == NULL)
                break;
            PMPI_Comm_delete_attr(s->comm, cp_keyval);
        }
        PMPI_Comm_free_keyval(&cp_keyval);
        cp_inited = 0;
    }
    return PMPI_Finalize();
}

/* COMMPRESS_HIERARCHY on a new state's communicator (collective over it;
 * docs/scaling.md): its nodes (MPI's, or COMMPRESS_HIERARCHY_TEST_NODE's
 * emulated ones), and whether calls go node-aware, agreed in two
 * allreduces (the largest and the smallest node, the number of nodes):
 * node-aware needs a node of more than one rank, every rank in a node,
 * and with auto more than one node. A
 * communicator whose nodes hold one rank each runs flat, so the leaders'
 * own communicator never nests a second level. */
static void hier_setup(MPI_Comm comm, cp_comm_state_t *s)
{
    int rank, wrank, nrank = 0, nsize = 1, rc;
    PMPI_Comm_rank(comm, &rank);
    PMPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    if (cp_cfg.hier_test_node > 0)
        rc = PMPI_Comm_split(comm, (int)((size_t)wrank / cp_cfg.hier_test_node), rank,
                             &s->node);
    else
        rc = PMPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &s->node);
    if (rc != MPI_SUCCESS) { /* the error handler did not stop the job */
        s->node = MPI_COMM_NULL;
        nsize = -1;
    } else {
        PMPI_Comm_rank(s->node, &nrank);
        PMPI_Comm_size(s->node, &nsize);
    }
    /* the largest node, the smallest (-1 if some rank has none), the
     * number of nodes */
    int v[3] = {nsize, -nsize, nrank == 0}, m[3];
    int nodes = 0, big = 0, small = 0;
    if (PMPI_Allreduce(v, m, 2, MPI_INT, MPI_MAX, comm) == MPI_SUCCESS &&
        PMPI_Allreduce(&v[2], &m[2], 1, MPI_INT, MPI_SUM, comm) == MPI_SUCCESS) {
        big = m[0];
        small = -m[1];
        nodes = m[2];
    }
    s->hier = big > 1 && small >= 1 && (cp_cfg.hierarchy >= CP_HIER_NODE || nodes > 1);
    /* striped where nodes are of equal size (rank j of every node on
     * chunk j); else one leader a node. */
    if (s->hier && cp_cfg.hierarchy == CP_HIER_STRIPE && small == big)
        s->hier = CP_HIER_STRIPED;
    if (s->hier && PMPI_Comm_split(comm, s->hier == CP_HIER_STRIPED ? nrank
                                         : nrank == 0 ? 0 : MPI_UNDEFINED,
                                   rank, &s->lead) != MPI_SUCCESS)
        s->hier = 0; /* not reached with MPI's default error handler */
    if (!s->hier && s->node != MPI_COMM_NULL)
        PMPI_Comm_free(&s->node);
    int size = 1;
    PMPI_Comm_size(comm, &size);
    if (rank == 0 && cp_cfg.hierarchy != CP_HIER_FLAT)
        cp_info("hierarchy: a communicator of %d ranks on %d nodes (the largest of %d): %s",
                size, nodes, big, s->hier == CP_HIER_STRIPED ? "node-aware, striped"
                                  : s->hier ? "node-aware, one leader a node" : "flat");
}

/* The communicator's state, created at its first compressed call (which
 * every rank of comm makes together): every rank learns whether all of
 * them succeeded, so either all compress on comm or none does. */
static cp_comm_state_t *comm_state(MPI_Comm comm)
{
    cp_comm_state_t *s = NULL;
    int found = 0, fail;

    PMPI_Comm_get_attr(comm, cp_keyval, &s, &found);
    if (found)
        return s == &cp_disabled ? NULL : s;
    /* An intercommunicator's calls pass through: every rank of it sees
     * that it is one, so no agreement is needed. */
    int inter = 0;
    if (PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter) {
        PMPI_Comm_set_attr(comm, cp_keyval, &cp_disabled);
        return NULL;
    }
    /* The pipelined schedules' own communicator: duplicated first, by
     * every rank (a collective), before anything that can fail alone. */
    MPI_Comm p2p = MPI_COMM_NULL;
    int size = 1;
    PMPI_Comm_size(comm, &size);
    fail = cp_coll.pipeline && size > 1 &&
           PMPI_Comm_dup(comm, &p2p) != MPI_SUCCESS;
    fail = fail || cp_fault(CP_FAULT_ALLOC) ||
           cp_comm_state_create(comm, &cp_coll, cp_cfg.max_tensors,
                                cp_cfg.state_key == CP_KEY_AUTO, &s) != CP_OK;
    if (s != NULL && p2p != MPI_COMM_NULL) {
        s->p2p = p2p; /* freed with s */
        p2p = MPI_COMM_NULL;
        cp_transport_mpi_p2p(&s->tp, &s->p2p);
    }
    int any = fail;
    if (PMPI_Allreduce(&fail, &any, 1, MPI_INT, MPI_MAX, comm) !=
            MPI_SUCCESS || any) {
        if (p2p != MPI_COMM_NULL)
            PMPI_Comm_free(&p2p);
        if (s != NULL)
            cp_comm_state_destroy(s);
        if (fail)
            cp_warn_rl("out of memory for commpress's state of a communicator: "
                    "its allreduces pass through uncompressed on every rank");
        PMPI_Comm_set_attr(comm, cp_keyval, &cp_disabled);
        return NULL;
    }
    if (cp_cfg.hierarchy != CP_HIER_FLAT && size > 1)
        hier_setup(comm, s);
    s->limit = cp_host_limit;
    s->charge = 1;
    if (cp_cfg.policy == CP_POLICY_AUTO)
        cp_policy_init(&s->policy, s->tp.rank, s->tp.size, cp_cfg.policy_times);
    s->adapt.report = 1; /* the API's contexts report their own */
    cp_comm_state_account(s);
    PMPI_Comm_set_attr(comm, cp_keyval, s);
    pthread_mutex_lock(&cp_lock);
    s->next = cp_states;
    if (cp_states)
        cp_states->prev = s;
    cp_states = s;
    pthread_mutex_unlock(&cp_lock);
    return s;
}

/* The policy: compress only what commpress handles exactly as MPI would
 * sum it, and only above the size threshold. Depends on values equal on all
 * ranks (DESIGN.md, contract 2). */
static int worth_compressing(size_t count, MPI_Datatype dt, MPI_Op op,
                             MPI_Comm comm)
{
    int size;
    if (!cp_inited || (cp_coll.codec->caps & CP_CODEC_IDENTITY))
        return 0;
    if (dt != MPI_FLOAT || op != MPI_SUM || count == 0 ||
        count * sizeof(float) < cp_cfg.min_bytes || comm == MPI_COMM_NULL)
        return 0;
    if (PMPI_Comm_size(comm, &size) != MPI_SUCCESS ||
        (size_t)size < cp_cfg.min_ranks)
        return 0;
    return 1;
}

static size_t ring_bytes(size_t count, int dtsize, MPI_Comm comm)
{
    int n = 1;
    if (comm != MPI_COMM_NULL)
        PMPI_Comm_size(comm, &n);
    return cp_ring_bytes(n, (double)count * dtsize);
}

/* How the call's tensor is named, and where its layout is found: the
 * send buffer's, else the receive buffer's (commpress_register_layout). */
static cp_name_t shim_naming(const void *send, const void *recv)
{
    cp_name_t name = {.naming = CP_NAME_AUTO};
    if (cp_cfg.state_key == CP_KEY_ADDRESS)
        return (cp_name_t){.naming = CP_NAME_ADDRESS};
    if (cp_cfg.state_key == CP_KEY_ORDER)
        name = (cp_name_t){.naming = CP_NAME_ORDER,
                           .step_calls = cp_cfg.step_calls};
    name.layouts = cp_shim_layouts();
    name.keys[name.nkeys++] = (uintptr_t)recv;
    if (send != MPI_IN_PLACE)
        name.keys[0] = (uintptr_t)send, name.keys[name.nkeys++] = (uintptr_t)recv;
    return name;
}

static int decorated(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype,
                     MPI_Op op, MPI_Comm comm);

/* A striped node-aware call: the node's exact sum scattered (rank j of
 * the node gets chunk j), chunk j's call among the j-th ranks of every
 * node (through the decorator), and the chunks gathered within the node:
 * each chunk's bits come from one stripe, so every rank gets the same. */
static int striped_allreduce(cp_comm_state_t *s, const void *sendbuf, void *recvbuf, int count)
{
    int nrank, m, rc;
    PMPI_Comm_rank(s->node, &nrank);
    PMPI_Comm_size(s->node, &m);
    int *cnt = malloc(2 * (size_t)m * sizeof(int)), *dsp = cnt + m;
    if (cnt == NULL)
        return MPI_ERR_NO_MEM;
    for (int j = 0; j < m; j++) {
        size_t off, len;
        cp_chunk_range((size_t)count, m, j, &off, &len);
        cnt[j] = (int)len, dsp[j] = (int)off;
    }
    float *mine = (float *)recvbuf + dsp[nrank];
    if (sendbuf == MPI_IN_PLACE) { /* MPI puts the chunk at the start */
        rc = PMPI_Reduce_scatter(MPI_IN_PLACE, recvbuf, cnt, MPI_FLOAT, MPI_SUM, s->node);
        if (rc == MPI_SUCCESS && dsp[nrank] > 0)
            memmove(mine, recvbuf, (size_t)cnt[nrank] * sizeof(float));
    } else {
        rc = PMPI_Reduce_scatter(sendbuf, mine, cnt, MPI_FLOAT, MPI_SUM, s->node);
    }
    if (rc == MPI_SUCCESS)
        rc = decorated(MPI_IN_PLACE, mine, cnt[nrank], MPI_FLOAT, MPI_SUM, s->lead);
    if (rc == MPI_SUCCESS)
        rc = PMPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recvbuf, cnt, dsp, MPI_FLOAT,
                             s->node);
    free(cnt);
    return rc;
}

/* A node-aware call (COMMPRESS_HIERARCHY) with one leader a node: the
 * node's exact sum on its first rank, that rank's call on the leaders'
 * communicator (through the decorator: compressed, or passed through as
 * there), and the result broadcast within the node, so every rank gets
 * the leader's bits. */
static int hier_allreduce(cp_comm_state_t *s, const void *sendbuf, void *recvbuf, int count)
{
    int nrank, rc;
    if (s->hier == CP_HIER_STRIPED)
        return striped_allreduce(s, sendbuf, recvbuf, count);
    PMPI_Comm_rank(s->node, &nrank);
    const void *in = sendbuf != MPI_IN_PLACE ? sendbuf : nrank == 0 ? MPI_IN_PLACE : recvbuf;
    rc = PMPI_Reduce(in, nrank == 0 ? recvbuf : NULL, count, MPI_FLOAT, MPI_SUM, 0, s->node);
    if (rc == MPI_SUCCESS && nrank == 0)
        rc = decorated(MPI_IN_PLACE, recvbuf, count, MPI_FLOAT, MPI_SUM, s->lead);
    if (rc == MPI_SUCCESS)
        rc = PMPI_Bcast(recvbuf, count, MPI_FLOAT, 0, s->node);
    return rc;
}

/* Runs the compressed allreduce; returns -1 when the call must go to PMPI
 * after all (e.g. an intercommunicator), otherwise an MPI error code. */
static int compressed_allreduce(const void *sendbuf, void *recvbuf,
                                size_t count, MPI_Comm comm)
{
    cp_comm_state_t *s;
    const cp_name_t name = shim_naming(sendbuf, recvbuf);
    cp_coll_result_t res;

    cp_fault_tick();
    s = comm_state(comm);
    if (s == NULL)
        return -1;
    if (s->hier) /* counts beyond an int pass through flat (MPI_Allreduce_c) */
        return count <= INT_MAX ? hier_allreduce(s, sendbuf, recvbuf, (int)count) : -1;
    cp_status_t st = cp_comm_state_allreduce(
        s, &cp_coll, &name, sendbuf == MPI_IN_PLACE ? NULL : sendbuf, recvbuf,
        count, &res);
    if (st != CP_OK) {
        /* This rank cannot go on in step with its peers (a corrupt message
         * only it received, a transport failure): stop the job through the
         * communicator's error handler rather than let the ranks drift. */
        fprintf(stderr, "commpress: error: rank %d: compressed allreduce of "
                        "%zu floats failed (%s); the ranks can no longer "
                        "agree, stopping\n", s->tp.rank, count,
                cp_status_string(st));
        fflush(stderr);
        PMPI_Comm_call_errhandler(comm, MPI_ERR_INTERN);
        return MPI_ERR_INTERN;
    }
    const unsigned long long handled = cp_stats_add_compressed(&res);
    if (cp_cfg.stats_every && handled % cp_cfg.stats_every == 0) {
        int wr = 0, ws = 1;
        PMPI_Comm_rank(MPI_COMM_WORLD, &wr);
        PMPI_Comm_size(MPI_COMM_WORLD, &ws);
        cp_stats_write_json(cp_cfg.stats_file, wr, ws, CP_STATS_LINE);
    }
    cp_comm_state_account(s); /* keeps the process's total current */
    cp_trace("allreduce %zu floats algo %d sent %zu of %zu bytes%s", count,
             (int)res.algo, res.bytes_sent, res.bytes_dense,
             res.fallback ? " (sent exact)" : "");
    return MPI_SUCCESS;
}

/* The decorator's one decision for both entry points: MPI_SUCCESS or an
 * MPI error when commpress handled the call, -1 when it goes to PMPI. */
static int intercept(const void *sendbuf, void *recvbuf, long long count,
                     MPI_Datatype datatype, MPI_Op op, MPI_Comm comm)
{
    if (count > 0 && worth_compressing((size_t)count, datatype, op, comm)) {
        int rc = compressed_allreduce(sendbuf, recvbuf, (size_t)count, comm);
        if (rc >= 0)
            return rc;
    }
    if (cp_inited && count > 0) {
        int dts = 0;
        PMPI_Type_size(datatype, &dts);
        cp_stats_add_passthrough(ring_bytes((size_t)count, dts, comm));
    }
    return -1;
}

/* MPI_Allreduce's body: the decorator, or PMPI. The node-aware levels
 * call it for their inner calls (not MPI_Allreduce: a library that links
 * rather than preloads commpress could bind that name to MPI's own). */
static int decorated(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype,
                     MPI_Op op, MPI_Comm comm)
{
    int rc = intercept(sendbuf, recvbuf, count, datatype, op, comm);
    return rc >= 0 ? rc
                   : PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count,
                  MPI_Datatype datatype, MPI_Op op, MPI_Comm comm)
{
    return decorated(sendbuf, recvbuf, count, datatype, op, comm);
}

#ifdef CP_HAVE_MPI_ALLREDUCE_C
int MPI_Allreduce_c(const void *sendbuf, void *recvbuf, MPI_Count count,
                    MPI_Datatype datatype, MPI_Op op, MPI_Comm comm)
{
    int rc = intercept(sendbuf, recvbuf, (long long)count, datatype, op, comm);
    return rc >= 0 ? rc
                   : PMPI_Allreduce_c(sendbuf, recvbuf, count, datatype, op,
                                      comm);
}
#endif

void commpress_stats(commpress_stats_t *out) { cp_stats_get(out); }

int cp_shim_ready(void) { return cp_inited; }
