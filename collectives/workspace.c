#include <stdlib.h>
#include <string.h>

#include "collectives/workspace.h"
#include "util/fault.h"

void cp_workspace_init(cp_workspace_t *ws) { memset(ws, 0, sizeof(*ws)); }

void cp_workspace_free(cp_workspace_t *ws)
{
    for (int i = 0; i < CP_WS_SLOTS; i++)
        free(ws->buf[i]);
    cp_workspace_init(ws);
}

size_t cp_workspace_bytes(const cp_workspace_t *ws)
{
    size_t total = 0;
    for (int i = 0; i < CP_WS_SLOTS; i++)
        total += ws->cap[i];
    return total;
}

/* Grown with headroom so that a slowly growing sequence of sizes does not
 * reallocate every call. */
static size_t ws_cap(size_t bytes) { return (bytes + bytes / 4 + 63) & ~(size_t)63; }

size_t cp_workspace_growth(const cp_workspace_t *ws,
                           const size_t need[CP_WS_SLOTS])
{
    size_t g = 0;
    for (int i = 0; i < CP_WS_SLOTS; i++) {
        size_t b = need[i] ? need[i] : 64;
        if (ws->cap[i] < b)
            g += ws_cap(b) - ws->cap[i];
    }
    return g;
}

static cp_status_t ws_alloc(cp_workspace_t *ws, int slot, size_t bytes)
{
    size_t cap = ws_cap(bytes);
    void *b = cp_fault(CP_FAULT_WSALLOC) ? NULL : aligned_alloc(64, cap);
    if (b == NULL)
        return CP_ERR_NOMEM;
    free(ws->buf[slot]);
    ws->buf[slot] = b;
    ws->cap[slot] = cap;
    return CP_OK;
}

cp_status_t cp_workspace_get(cp_workspace_t *ws, int slot, size_t bytes,
                             void **p)
{
    if (bytes == 0)
        bytes = 64;
    if (ws->cap[slot] < bytes)
        CP_CHECK(ws_alloc(ws, slot, bytes));
    *p = ws->buf[slot];
    return CP_OK;
}

cp_status_t cp_workspace_reserve(cp_workspace_t *ws,
                                 const size_t need[CP_WS_SLOTS], int *grow_p)
{
    cp_status_t st = CP_OK;
    *grow_p = 0;
    for (int i = 0; i < CP_WS_SLOTS; i++) {
        size_t b = need[i] ? need[i] : 64;
        *grow_p |= b > ws->agreed[i];
        if (st == CP_OK && ws->cap[i] < b)
            st = ws_alloc(ws, i, b);
    }
    return st;
}

void cp_workspace_commit(cp_workspace_t *ws, const size_t need[CP_WS_SLOTS])
{
    for (int i = 0; i < CP_WS_SLOTS; i++) {
        size_t b = need[i] ? need[i] : 64;
        if (b > ws->agreed[i])
            ws->agreed[i] = b;
    }
}
