/* State of one MPI communicator: its transport, workspace, tensor table
 * and how its calls are named (DESIGN.md, contract 7; docs/design.md,
 * "Tensor identity"). */
#ifndef CP_COMM_STATE_H
#define CP_COMM_STATE_H

#include <mpi.h>

#include "collectives/allreduce.h"
#include "collectives/transport_mpi.h"
#include "plugin/adapt.h"
#include "plugin/addr_seen.h"
#include "plugin/layout.h"
#include "plugin/policy.h"
#include "plugin/step_detect.h"
#include "plugin/tensor_table.h"

/* How a call finds its tensor state. */
typedef enum {
    CP_NAME_AUTO = 0,  /* the step detector: the same on every rank */
    CP_NAME_ADDRESS,   /* the buffer address: agreed across ranks per call */
    CP_NAME_ORDER,     /* the call's position in a step of step_calls */
    CP_NAME_EXPLICIT,  /* the caller's id (the explicit API) */
} cp_naming_t;

typedef struct {
    cp_naming_t naming;
    size_t step_calls; /* CP_NAME_ORDER */
    uint64_t id;       /* CP_NAME_EXPLICIT */
    /* Where a new tensor's layout is looked up (plugin/layout.h; NULL:
     * nowhere): the first of keys[0..nkeys) holding one of the call's
     * count. Not with CP_NAME_ADDRESS, whose tensors are not agreed. */
    cp_layout_registry_t *layouts;
    uint64_t keys[2];
    size_t nkeys;
} cp_name_t;

typedef struct cp_comm_state {
    MPI_Comm comm; /* the user's handle; the transport context */
    MPI_Comm p2p;  /* a duplicate for the pipelined schedules, or
                      MPI_COMM_NULL (freed with the state) */
    /* COMMPRESS_HIERARCHY (docs/scaling.md): with hier set, the ranks of
     * this rank's node, and lead: CP_HIER_STRIPED (nodes of equal size),
     * the ranks of every node with this rank's place in its node; else (on
     * the node's first rank, MPI_COMM_NULL elsewhere) one rank per node.
     * Their own states compress; both freed with the state. */
#define CP_HIER_LEADER 1
#define CP_HIER_STRIPED 2
    int hier;
    MPI_Comm node, lead;
    cp_transport_t tp;
    int disabled;  /* some rank could not create its state: pass through */
    cp_workspace_t ws;
    cp_tensor_table_t tensors;
    int detect;    /* det and seen are in use */
    cp_stepdet_t det;
    cp_addrseen_t seen;
    uint64_t calls; /* compressed calls on this communicator */
    size_t period;  /* the step in calls (CP_NAME_AUTO: the detector's) */
    int stepped;    /* CP_NAME_EXPLICIT: some id was called again */
    cp_adapt_state_t adapt; /* COMMPRESS_ADAPT (plugin/adapt.h) */
    cp_policy_t policy;     /* COMMPRESS_POLICY=auto (the shim's; off for
                               the API's contexts) */
    unsigned warned; /* rate-limited warnings */
    /* The process's bound on host state (COMMPRESS_MAX_STATE_BYTES), 0:
     * none; with charge set, this state's bytes count in the process's
     * total (plugin/stats.h), `charged` being what it last reported. */
    size_t limit;
    int charge;
    size_t charged;
    struct cp_comm_state *prev, *next; /* list of live states */
} cp_comm_state_t;

/* Local: the caller agrees on the outcome across the communicator (comm
 * MPI_COMM_NULL: no MPI transport; the caller sets s->tp). cfg is
 * the configuration every call on it runs with (COMMPRESS_ADAPT's
 * candidates come from it). With detect set, room for the step detector
 * (CP_NAME_AUTO). */
cp_status_t cp_comm_state_create(MPI_Comm comm, const cp_coll_config_t *cfg,
                                 size_t max_entries, int detect,
                                 cp_comm_state_t **s_p);
void cp_comm_state_destroy(cp_comm_state_t *s);
size_t cp_comm_state_bytes(const cp_comm_state_t *s);
/* Reports this state's size to the process's total (if it is charged):
 * called by the one thread that uses the state, after a call. */
void cp_comm_state_account(cp_comm_state_t *s);

/* Compressed SUM allreduce of fp32 on s (send NULL: in place), the
 * tensor named as `name` says; a tensor whose ranks all found the same
 * layout at its first call runs by segments, each a tensor of its own
 * (docs/lgreco.md, "Fused buffers"). Every rank returns alike: CP_OK with
 * res->fallback telling whether the exact allreduce ran instead (some rank
 * out of memory, a failure, a disagreement, a non-finite step), or an
 * error when this rank cannot go on in step with the others (the caller
 * stops the job). */
cp_status_t cp_comm_state_allreduce(cp_comm_state_t *s,
                                    const cp_coll_config_t *cfg,
                                    const cp_name_t *name, const float *send,
                                    float *recv, size_t count,
                                    cp_coll_result_t *res);

#endif
