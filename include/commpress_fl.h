/* commpress federated learning: SCAFCOM and SCALLION (Huang, Li, Li; ICLR
 * 2024), and FedAvg for comparison, with the commpress compressors on the
 * uplink (docs/federated.md). No MPI here: a client's round produces one
 * message as bytes, which can travel over any channel (MPI, HTTP, a file);
 * the server aggregates the messages of the clients sampled in a round.
 *
 * Functions return 0 or a negative status (commpress_strerror() in
 * commpress.h names it); -1 invalid argument, -3 malformed message or
 * state, -4 buffer too small, -9 a round refused for non-finite values
 * (commpress_fl_server_aggregate). */
#ifndef COMMPRESS_FL_H
#define COMMPRESS_FL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *algorithm;  /* fedavg | scafcom | scallion */
    const char *compressor; /* a codec of commpress-info but dgc (whose
                               momentum is a collective's): none, fp16,
                               bf16, topk, sign, quant, randk */
    double density;         /* topk, randk (the clients of a round send
                               the same random indices) */
    int bits;               /* quant */
    size_t bucket;          /* quant */
    int stochastic;         /* quant: stochastic rounding (unbiased) */
    size_t dim;             /* model size */
    size_t num_clients;     /* N */
    int local_steps;        /* K */
    double lr_local;        /* eta_l */
    double lr_global;       /* eta_g; gamma = eta_g eta_l K */
    double beta;            /* scafcom: momentum, (0, 1]; 1 without
                               compression is SCAFFOLD */
    double alpha;           /* scallion: scaling, (0, 1] */
    uint64_t seed;          /* stochastic rounding, sampling in codecs */
    int topk_fp16;          /* topk: values as fp16 (6 bytes an entry) */
} commpress_fl_config_t;

/* scafcom, topk at 0.01, K 10, eta_l 0.1, eta_g 1, beta 0.2, alpha 0.1,
 * N 100; dim must be set. */
void commpress_fl_config_default(commpress_fl_config_t *c);

/* The client's stochastic gradient at y (dim floats into grad); nonzero
 * aborts the round. */
typedef int (*commpress_fl_grad_t)(void *user, const float *y, float *grad,
                                   size_t dim);

typedef struct commpress_fl_client commpress_fl_client_t;
typedef struct commpress_fl_server commpress_fl_server_t;

/* Largest message a client of this configuration produces. */
size_t commpress_fl_message_max(const commpress_fl_config_t *c);

int commpress_fl_client_create(const commpress_fl_config_t *c, uint32_t id,
                               commpress_fl_client_t **cl_p);
void commpress_fl_client_destroy(commpress_fl_client_t *cl);
/* One round: K local steps from the global model x with the global control
 * variate c, the client's state updated, its uplink message written to msg
 * (at most commpress_fl_message_max bytes). `round` is the server's round
 * (commpress_fl_server_round), carried in the message. On error (a failing
 * gradient, non-finite values, a small buffer) the state is unchanged.
 * On success c_i (and v_i) are already committed: if the server then
 * refuses the round, or the message is lost, load the state saved before
 * the round (commpress_fl_client_save), or c_i no longer matches the
 * server's c (docs/federated.md, "Refused rounds"). */
int commpress_fl_client_round(commpress_fl_client_t *cl, const float *x,
                              const float *c, uint64_t round,
                              commpress_fl_grad_t grad, void *user, void *msg,
                              size_t cap, size_t *len);
/* State (c_i, and v_i for scafcom) as bytes; buf NULL gives the size.
 * load refuses (-3, state unchanged) a buffer that is truncated, corrupt,
 * of another client or configuration, or that holds Inf/NaN. */
int commpress_fl_client_save(const commpress_fl_client_t *cl, void *buf,
                             size_t cap, size_t *len);
int commpress_fl_client_load(commpress_fl_client_t *cl, const void *buf,
                             size_t len);

/* x0: the initial model (dim floats, finite: -1 otherwise); the control
 * variate starts at 0. */
int commpress_fl_server_create(const commpress_fl_config_t *c,
                               const float *x0,
                               commpress_fl_server_t **s_p);
void commpress_fl_server_destroy(commpress_fl_server_t *s);
const float *commpress_fl_server_model(const commpress_fl_server_t *s);
const float *commpress_fl_server_control(const commpress_fl_server_t *s);
uint64_t commpress_fl_server_round(const commpress_fl_server_t *s);
/* Aggregates the messages of the sampled clients of this round:
 * x <- x - gamma (c + mean delta); c <- c + (alpha / N) sum delta
 * (alpha = 1 for scafcom; FedAvg keeps c = 0), then the round advances.
 * Every message is checked first (header, round, algorithm, dimension,
 * client id < N, duplicate clients, the codec's bounds): one bad message
 * refuses the call with -3. Then every value to be committed (the new x
 * and c) is checked finite: a message that decodes to Inf/NaN (the codecs
 * accept some: none/fp16/bf16 payloads can hold Inf, quant's min + unit q
 * and fp16's scale can overflow), a sum of messages that overflows, or an
 * update that overflows the model (then c's cannot: S <= N) refuses the
 * call with -9 (COMMPRESS_ERR_NONFINITE). A refused call
 * changes nothing: model, control variate, round and uplink counters stay
 * bit for bit; commpress_fl_server_error says why, naming the client. */
int commpress_fl_server_aggregate(commpress_fl_server_t *s,
                                  const void *const *msgs, const size_t *lens,
                                  size_t count);
/* Why the last aggregate or load failed, one line without a newline, e.g.
 *   "client 7: its message decodes to a non-finite value"
 *   "client 7: the round's sum overflows when its message is added"
 *   "the round's update would make the model non-finite (largest message:
 *    client 7)"
 *   "client 7: message of round 3, the server is at round 4"
 * "" when the last call succeeded. Owned by s, valid until its next call. */
const char *commpress_fl_server_error(const commpress_fl_server_t *s);
/* The client the last refusal named (the id its message header claims),
 * or -1 (success, or no client to name: a message too short to carry an
 * id, a bad magic, a refused checkpoint). Recommended policy: drop that
 * client's message and aggregate the round again without it (the others'
 * messages stay valid: the round did not advance); the refused client
 * reloads the state it saved before its round (docs/federated.md). */
int64_t commpress_fl_server_refused(const commpress_fl_server_t *s);
int commpress_fl_server_save(const commpress_fl_server_t *s, void *buf,
                             size_t cap, size_t *len);
/* Refuses (-3, state unchanged, commpress_fl_server_error says why) a
 * buffer that is truncated, corrupt, of another configuration, or whose
 * model or control variate holds Inf/NaN. */
int commpress_fl_server_load(commpress_fl_server_t *s, const void *buf,
                             size_t len);
/* Uplink bytes received so far, and what dense fp32 uploads would be. */
void commpress_fl_server_uplink(const commpress_fl_server_t *s,
                                unsigned long long *bytes,
                                unsigned long long *bytes_dense);

#ifdef __cplusplus
}
#endif

#endif
