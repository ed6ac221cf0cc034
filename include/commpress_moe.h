/* commpress for mixture-of-experts: LSH-MoE (Nie et al., NeurIPS 2024;
 * docs/moe.md). The tokens a rank sends to one expert are clustered with
 * cross-polytope LSH (L hash functions over a fast pseudo-rotation); one
 * centroid per bucket travels instead of the bucket's tokens, and the
 * sender keeps each token's residual (token - centroid). After the expert
 * ran on the centroids, the combine returns one output per centroid and
 * the sender restores one output row per token:
 *   y_x = E(c_j) + (x - c_j)    (compensation on; E(c_j) without).
 *
 * The exchanges are MPI all-to-alls over the context's communicator (a
 * duplicate of the caller's): dispatch, combine and their backward are
 * collective, every rank calling them in the same order. A handle pairs a
 * dispatch with its combine and backward, so interleaved micro-batches
 * and recomputation never mix them. Functions return 0 or a negative
 * status (commpress_strerror() in commpress.h). */
#ifndef COMMPRESS_MOE_H
#define COMMPRESS_MOE_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t hidden;       /* floats per token row (d), 1 .. 2^20 */
    int hashes;          /* L hash functions, 0 .. 32; 0 sends every row
                            as it is (the uncompressed all-to-all) */
    uint64_t seed;       /* of the rotations (need not match across ranks:
                            clustering is local to each sender) */
    double max_fraction; /* (0, 1]: a destination whose buckets exceed this
                            fraction of its rows gets its raw rows instead
                            (flagged), so compressing never sends more */
    int compensate;      /* 1: y = E(c) + (x - c); 0: y = E(c) */
} commpress_moe_config_t;

/* hidden must be set; hashes 6, seed 1, max_fraction 0.5, compensate 1. */
void commpress_moe_config_default(commpress_moe_config_t *c);

typedef struct commpress_moe commpress_moe_t;
typedef struct commpress_moe_handle commpress_moe_handle_t;

/* Collective over comm: every rank passes a valid configuration with the
 * same hidden size, or all get -1 (COMMPRESS_ERR_INVALID) / -8. */
int commpress_moe_create(const commpress_moe_config_t *cfg, MPI_Comm comm,
                         commpress_moe_t **moe_p);
void commpress_moe_destroy(commpress_moe_t *moe);

/* Collective. rows: this rank's tokens grouped by destination rank,
 * send_counts[p] rows (of `hidden` floats) for rank p. On return *h_p
 * holds the rows this rank's expert runs on (commpress_moe_expert_rows):
 * every source's centroids (or raw rows), grouped by source. A count
 * message that is out of range on any rank fails the call on every rank
 * (-3, COMMPRESS_ERR_MALFORMED) before any payload moves; so does rows
 * NULL with rows to send on any rank (-1, COMMPRESS_ERR_INVALID), and a
 * rank out of memory (-2). */
int commpress_moe_dispatch(commpress_moe_t *moe, const float *rows,
                           const size_t *send_counts,
                           commpress_moe_handle_t **h_p);
/* The expert's input: *nrows rows, counts[p] of them from rank p. */
const float *commpress_moe_expert_rows(const commpress_moe_handle_t *h,
                                       size_t *nrows, const size_t **counts);
/* The rows this rank dispatched (sum of send_counts). */
size_t commpress_moe_token_rows(const commpress_moe_handle_t *h);
/* Collective. expert_out: one output row of `hidden` floats per expert
 * row, in their order. out: one row per token this rank dispatched, in
 * the order of its rows. */
int commpress_moe_combine(commpress_moe_handle_t *h, const float *expert_out,
                          float *out);
/* Collective. The backward of combine: grad_out (one row per token) in,
 * the gradient of the expert's output rows out (one per expert row): a
 * bucket's rows' gradients summed, s_j = sum_{x in j} dL/dy_x. */
int commpress_moe_combine_backward(commpress_moe_handle_t *h,
                                   const float *grad_out,
                                   float *grad_expert_out);
/* Collective, after combine_backward. The backward of dispatch: the
 * gradient of the expert's input rows g_j in, the tokens' gradient out:
 *   dL/dx = dL/dy_x + (g_j - s_j) / n_j   (compensation on)
 *   dL/dx = g_j / n_j                     (off)
 * (the residual path passes dL/dy_x straight through; the centroid, the
 * mean of its n_j rows, spreads its gradient evenly). */
int commpress_moe_dispatch_backward(commpress_moe_handle_t *h,
                                    const float *grad_expert_in,
                                    float *grad_rows);
void commpress_moe_release(commpress_moe_handle_t *h);

typedef struct {
    unsigned long long dispatches;
    unsigned long long rows;          /* token rows dispatched to other ranks */
    unsigned long long rows_sent;     /* centroid and raw rows sent instead */
    unsigned long long raw_destinations; /* (dispatch, destination) pairs
                                            sent raw by max_fraction */
    unsigned long long bytes_sent;    /* all four exchanges, to other ranks */
    unsigned long long bytes_raw;     /* the same exchanges with every row */
    double hash_seconds;              /* hashing and clustering */
} commpress_moe_stats_t;
void commpress_moe_stats(const commpress_moe_t *moe, commpress_moe_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
