#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/layout.h"
#include "util/hd.h"

cp_status_t cp_layout_check(size_t count, size_t nlayers, const size_t *offsets,
                            char *err, size_t errlen)
{
    if (nlayers == 0 || nlayers > CP_LAYOUT_MAX_LAYERS || offsets == NULL) {
        snprintf(err, errlen, "%zu layers: a layout has 1 to %d layers and "
                 "nlayers + 1 offsets", nlayers, CP_LAYOUT_MAX_LAYERS);
        return CP_ERR_INVALID;
    }
    if (offsets[0] != 0) {
        snprintf(err, errlen, "the first offset is %zu: it must be 0", offsets[0]);
        return CP_ERR_INVALID;
    }
    for (size_t i = 0; i < nlayers; i++)
        if (offsets[i + 1] <= offsets[i]) {
            snprintf(err, errlen, "layer %zu is empty or negative (offsets %zu "
                     "then %zu): offsets must increase", i, offsets[i],
                     offsets[i + 1]);
            return CP_ERR_INVALID;
        }
    if (offsets[nlayers] != count) {
        snprintf(err, errlen, "the layers sum to %zu floats, not to the buffer's "
                 "count %zu", offsets[nlayers], count);
        return CP_ERR_INVALID;
    }
    return CP_OK;
}

cp_status_t cp_layout_new(size_t count, size_t nlayers, const size_t *offsets,
                          cp_layout_t **l_p)
{
    char err[256];
    CP_CHECK(cp_layout_check(count, nlayers, offsets, err, sizeof(err)));
    cp_layout_t *l = malloc(sizeof(*l) + (nlayers + 1) * sizeof(size_t));
    if (l == NULL)
        return CP_ERR_NOMEM;
    l->count = count;
    l->nlayers = nlayers;
    memcpy(l->off, offsets, (nlayers + 1) * sizeof(size_t));
    uint64_t h = cp_fnv1a(&count, sizeof(count));
    h ^= cp_fnv1a(offsets, (nlayers + 1) * sizeof(size_t)) * 0x9e3779b97f4a7c15ull;
    l->hash = h ? h : 1;
    *l_p = l;
    return CP_OK;
}

static cp_layout_t *layout_dup(const cp_layout_t *l)
{
    const size_t b = sizeof(*l) + (l->nlayers + 1) * sizeof(size_t);
    cp_layout_t *c = malloc(b);
    if (c)
        memcpy(c, l, b);
    return c;
}

void cp_layout_registry_init(cp_layout_registry_t *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
}

void cp_layout_registry_fini(cp_layout_registry_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].layout);
    free(r->v);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
}

cp_status_t cp_layout_registry_set(cp_layout_registry_t *r, uint64_t key,
                                   const cp_layout_t *l)
{
    cp_layout_t *c = NULL;
    cp_status_t st = CP_OK;
    if (l && (c = layout_dup(l)) == NULL)
        return CP_ERR_NOMEM;
    pthread_mutex_lock(&r->lock);
    size_t i = 0;
    while (i < r->n && r->v[i].key != key)
        i++;
    if (i < r->n) {
        free(r->v[i].layout);
        if (c)
            r->v[i].layout = c;
        else
            r->v[i] = r->v[--r->n];
    } else if (c) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 8;
            void *v = realloc(r->v, cap * sizeof(*r->v));
            if (v == NULL)
                st = CP_ERR_NOMEM;
            else
                r->v = v, r->cap = cap;
        }
        if (st == CP_OK)
            r->v[r->n++] = (struct cp_layout_entry){.key = key, .layout = c};
        else
            free(c);
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

cp_status_t cp_layout_registry_copy(cp_layout_registry_t *r,
                                    const uint64_t *keys, size_t nkeys,
                                    size_t count, cp_layout_t **l_p)
{
    cp_status_t st = CP_OK;
    *l_p = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t k = 0; k < nkeys && *l_p == NULL && st == CP_OK; k++)
        for (size_t i = 0; i < r->n; i++)
            if (r->v[i].key == keys[k] && r->v[i].layout->count == count) {
                if ((*l_p = layout_dup(r->v[i].layout)) == NULL)
                    st = CP_ERR_NOMEM;
                break;
            }
    pthread_mutex_unlock(&r->lock);
    return st;
}
