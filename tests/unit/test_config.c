#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/config.h"
#include "tests/common/codecs.h"

static void clear_env(void)
{
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "COMMPRESS_", 10) == 0) {
                char name[128];
                size_t len = strcspn(*e, "=");
                snprintf(name, sizeof(name), "%.*s", (int)len, *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
}

Test(config, defaults)
{
    cp_config_t c;
    char err[512];
    clear_env();
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_OK);
    cr_assert_str_eq(cp_config_compressor_name(&c), "none");
    /* Each codec's own block of parameters. */
    cr_assert_eq(c.coll.codec[cp_compressor_index("topk")].density, 0.01);
    cr_assert_eq(c.coll.codec[cp_compressor_index("quant")].bits, 4);
    cr_assert_eq(c.coll.codec[cp_compressor_index("quant")].bucket, 512);
    cr_assert_eq(c.coll.codec[cp_compressor_index("randk")].density, 0.01);
    cr_assert_eq(c.min_bytes, 65536);
    cp_coll_config_t coll;
    setenv("COMMPRESS_COMPRESSOR", "quant", 1);
    cp_config_parse_env(&c, err, sizeof(err));
    cp_config_to_coll(&c, &coll);
    cr_assert_eq(coll.feedback, &cp_feedback_ef); /* auto: ef for quant */
    setenv("COMMPRESS_COMPRESSOR", "FP16", 1);    /* case-insensitive */
    cp_config_parse_env(&c, err, sizeof(err));
    cp_config_to_coll(&c, &coll);
    cr_assert_eq(coll.codec, &cp_compressor_fp16);
    cr_assert_eq(coll.feedback, &cp_feedback_none);
}

Test(config, dgc_is_topk_with_its_own_feedback)
{
    cp_config_t c;
    cp_coll_config_t coll;
    char err[512];
    clear_env();
    setenv("COMMPRESS_COMPRESSOR", "dgc", 1);
    setenv("COMMPRESS_DGC_MOMENTUM", "0.5", 1);
    setenv("COMMPRESS_DGC_CLIP", "2.5", 1);
    setenv("COMMPRESS_DGC_WARMUP_STEPS", "100", 1);
    setenv("COMMPRESS_DGC_DENSE_BELOW", "7", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_OK, "%s", err);
    cp_config_to_coll(&c, &coll);
    /* topk's kernels and wire, DGC's feedback. */
    cr_assert_eq(coll.codec, &cp_compressor_dgc);
    cr_assert_eq(coll.codec->encode, cp_compressor_topk.encode);
    cr_assert_eq(coll.codec->decode, cp_compressor_topk.decode);
    cr_assert_eq(coll.feedback, &cp_feedback_dgc);
    cr_assert_eq(coll.fb.momentum, 0.5f);
    cr_assert_eq(coll.fb.clip, 2.5);
    cr_assert_eq(coll.fb.warmup_steps, 100);
    cr_assert_eq(coll.fb.dense_below, 7);
    /* Another feedback on top of DGC's own is refused. */
    setenv("COMMPRESS_FEEDBACK", "ef", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_ERR_CONFIG);
    cr_assert_str_eq(err, "COMMPRESS_FEEDBACK='ef' is invalid with "
                          "COMMPRESS_COMPRESSOR=dgc; accepted: auto (dgc "
                          "keeps its own error feedback)");
}

static void expect_error(const char *var, const char *val, const char *msg)
{
    cp_config_t c;
    char err[512];
    clear_env();
    setenv(var, val, 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_ERR_CONFIG, "%s=%s", var, val);
    cr_assert_str_eq(err, msg);
}

Test(config, invalid_values_named_with_what_is_accepted)
{
    expect_error("COMMPRESS_COMPRESSOR", "zip",
                 "COMMPRESS_COMPRESSOR='zip' is invalid; accepted: none | fp16 | bf16 | topk | sign | quant | dgc | randk");
    expect_error("COMMPRESS_RANDK_DENSITY", "0",
                 "COMMPRESS_RANDK_DENSITY='0' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_RANDK_DENSITY", "2",
                 "COMMPRESS_RANDK_DENSITY='2' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_DGC_MOMENTUM", "1",
                 "COMMPRESS_DGC_MOMENTUM='1' is invalid; accepted: a number in [0, 1)");
    expect_error("COMMPRESS_DGC_CLIP", "-1",
                 "COMMPRESS_DGC_CLIP='-1' is invalid; accepted: a number in [0, 1e+30]");
    expect_error("COMMPRESS_DENSITY", "0", "COMMPRESS_DENSITY='0' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_DENSITY", "1.5", "COMMPRESS_DENSITY='1.5' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_DENSITY", "0.1x", "COMMPRESS_DENSITY='0.1x' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_DENSITY", "nan", "COMMPRESS_DENSITY='nan' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_BITS", "9", "COMMPRESS_BITS='9' is invalid; accepted: an integer in [1, 8]");
    expect_error("COMMPRESS_BITS", "-1", "COMMPRESS_BITS='-1' is invalid; accepted: an integer in [1, 8]");
    expect_error("COMMPRESS_BITS", "", "COMMPRESS_BITS='' is invalid; accepted: an integer in [1, 8]");
    expect_error("COMMPRESS_FEEDBACK", "ef21x",
                 "COMMPRESS_FEEDBACK='ef21x' is invalid; accepted: auto | none | ef | ef21 | econtrol | ef21-sgdm");
    expect_error("COMMPRESS_ROUNDING", "up",
                 "COMMPRESS_ROUNDING='up' is invalid; accepted: nearest | stochastic");
    expect_error("COMMPRESS_MIN_BYTES", "1k",
                 "COMMPRESS_MIN_BYTES='1k' is invalid; accepted: an integer in [0, 1000000000000000000]");
    expect_error("COMMPRESS_STATE_KEY", "order",
                 "COMMPRESS_STEP_CALLS='0' is invalid with COMMPRESS_STATE_KEY=order; accepted: an integer >= 1 (the number of compressed calls per step)");
    expect_error("COMMPRESS_STATE_KEY", "buffer",
                 "COMMPRESS_STATE_KEY='buffer' is invalid; accepted: auto | address | order");
    expect_error("COMMPRESS_EF21_SGDM_ETA", "0",
                 "COMMPRESS_EF21_SGDM_ETA='0' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_FAULT", "alloc@one:3",
                 "COMMPRESS_FAULT='alloc@one:3' is invalid; accepted: kind@rank:call[,...]");
    expect_error("COMMPRESS_FAULT", "melt@0:3",
                 "COMMPRESS_FAULT='melt@0:3' is invalid; accepted: kind@rank:call[,...]");
}

/* Edges of numbers: whitespace around a value is ignored; a sign on an
 * integer, an integer beyond 64 bits and a table that would allocate
 * gigabytes are refused. */
Test(config, whitespace_signs_overflow_and_sizes)
{
    cp_config_t c;
    char err[512];
    clear_env();
    setenv("COMMPRESS_COMPRESSOR", " quant\t", 1);
    setenv("COMMPRESS_BITS", " 3 ", 1);
    setenv("COMMPRESS_BUCKET", "\n128", 1);
    setenv("COMMPRESS_MIN_BYTES", "  4096", 1);
    setenv("COMMPRESS_SEED", "18446744073709551615 ", 1);
    setenv("COMMPRESS_MAX_STATE_BYTES", "1000000", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_OK, "%s", err);
    cr_assert_str_eq(cp_config_compressor_name(&c), "quant");
    cr_assert_eq(c.coll.codec[cp_compressor_index("quant")].bits, 3);
    cr_assert_eq(c.coll.codec[cp_compressor_index("quant")].bucket, 128);
    cr_assert_eq(c.min_bytes, 4096);
    cr_assert_eq(c.coll.seed, UINT64_MAX);
    cr_assert_eq(c.max_state_bytes, 1000000);
    cr_assert_eq(cp_config_state_limit(&c, 1ull << 40, 8), 1000000);
    c.max_state_bytes = 0; /* auto: a quarter of memory over its sharers */
    cr_assert_eq(cp_config_state_limit(&c, 64ull << 30, 8), 2ull << 30);
    clear_env();
    expect_error("COMMPRESS_SEED", " -1",
                 "COMMPRESS_SEED=' -1' is invalid; accepted: an unsigned 64-bit integer");
    expect_error("COMMPRESS_SEED", "+1",
                 "COMMPRESS_SEED='+1' is invalid; accepted: an unsigned 64-bit integer");
    expect_error("COMMPRESS_SEED", "18446744073709551616",
                 "COMMPRESS_SEED='18446744073709551616' is invalid; accepted: an unsigned 64-bit integer");
    expect_error("COMMPRESS_MIN_BYTES", "99999999999999999999999",
                 "COMMPRESS_MIN_BYTES='99999999999999999999999' is invalid; accepted: an integer in [0, 1000000000000000000]");
    expect_error("COMMPRESS_MIN_BYTES", "1 2",
                 "COMMPRESS_MIN_BYTES='1 2' is invalid; accepted: an integer in [0, 1000000000000000000]");
    expect_error("COMMPRESS_MIN_BYTES", "   ",
                 "COMMPRESS_MIN_BYTES='   ' is invalid; accepted: an integer in [0, 1000000000000000000]");
    expect_error("COMMPRESS_BITS", "+4", "COMMPRESS_BITS='+4' is invalid; accepted: an integer in [1, 8]");
    expect_error("COMMPRESS_BITS", "4294967300",
                 "COMMPRESS_BITS='4294967300' is invalid; accepted: an integer in [1, 8]");
    expect_error("COMMPRESS_DENSITY", " ", "COMMPRESS_DENSITY=' ' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_DENSITY", "1e999", "COMMPRESS_DENSITY='1e999' is invalid; accepted: a number in (0, 1]");
    expect_error("COMMPRESS_MAX_TENSORS", "10000000",
                 "COMMPRESS_MAX_TENSORS='10000000' is invalid; accepted: an integer in [1, 1000000]");
    expect_error("COMMPRESS_MAX_STATE_BYTES", "-5",
                 "COMMPRESS_MAX_STATE_BYTES='-5' is invalid; accepted: an integer in [0, 1000000000000000000]");
}

/* COMMPRESS_ADAPT's variables: validated, the window within the period,
 * not with address keying. */
Test(config, adapt_variables)
{
    cp_config_t c;
    cp_coll_config_t coll;
    char err[512];
    clear_env();
    setenv("COMMPRESS_COMPRESSOR", "quant", 1);
    setenv("COMMPRESS_ADAPT", "lgreco", 1);
    setenv("COMMPRESS_ADAPT_EVERY", "100", 1);
    setenv("COMMPRESS_ADAPT_WINDOW", "100", 1);
    setenv("COMMPRESS_ADAPT_ALPHA", "0.5", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_OK, "%s", err);
    cp_config_to_coll(&c, &coll);
    cr_assert(coll.adapt.on == 1 && coll.adapt.every == 100 &&
              coll.adapt.window == 100 && coll.adapt.alpha == 0.5);
    setenv("COMMPRESS_ADAPT_WINDOW", "101", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_ERR_CONFIG);
    cr_assert_str_eq(err, "COMMPRESS_ADAPT_WINDOW='101' is invalid with COMMPRESS_ADAPT_EVERY=100; accepted: an integer in [1, 100]");
    setenv("COMMPRESS_ADAPT_WINDOW", "10", 1);
    setenv("COMMPRESS_STATE_KEY", "address", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_ERR_CONFIG);
    cr_assert_str_eq(err, "COMMPRESS_STATE_KEY='address' is invalid with COMMPRESS_ADAPT=lgreco; accepted: auto | order (plans are made per step)");
    clear_env();
    expect_error("COMMPRESS_ADAPT", "greco",
                 "COMMPRESS_ADAPT='greco' is invalid; accepted: none | lgreco");
    expect_error("COMMPRESS_ADAPT_ALPHA", "0",
                 "COMMPRESS_ADAPT_ALPHA='0' is invalid; accepted: a number in (0, 100]");
    expect_error("COMMPRESS_ADAPT_EVERY", "0",
                 "COMMPRESS_ADAPT_EVERY='0' is invalid; accepted: an integer in [1, 1000000000]");
}

/* The default naming is the step detector's; fault specifications parse. */
Test(config, state_key_default_and_faults)
{
    cp_config_t c;
    char err[512];
    clear_env();
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_OK);
    cr_assert_eq(c.state_key, CP_KEY_AUTO);
    setenv("COMMPRESS_FAULT", "alloc@1:8,corrupt@0:12", 1);
    cr_assert_eq(cp_config_parse_env(&c, err, sizeof(err)), CP_OK, "%s", err);
    cr_assert_str_eq(c.fault, "alloc@1:8,corrupt@0:12");
    clear_env();
}

/* Equal values spelled differently hash equal; different values do not;
 * per-rank variables (debug, stats file) are not compared. */
Test(config, hashes_compare_values_not_spelling)
{
    cp_config_t a, b;
    char err[512];
    uint64_t ha[CP_CONFIG_MAX_FIELDS], hb[CP_CONFIG_MAX_FIELDS];
    const char *names[CP_CONFIG_MAX_FIELDS];
    clear_env();
    setenv("COMMPRESS_DENSITY", "0.01", 1);
    setenv("COMMPRESS_STATS_FILE", "/tmp/a", 1);
    cp_config_parse_env(&a, err, sizeof(err));
    setenv("COMMPRESS_DENSITY", "1e-2", 1);
    setenv("COMMPRESS_STATS_FILE", "/tmp/b", 1);
    setenv("COMMPRESS_DEBUG", "INFO", 1);
    cp_config_parse_env(&b, err, sizeof(err));
    size_t n = cp_config_hashes(&a, ha, names);
    cr_assert_eq(cp_config_hashes(&b, hb, names), n);
    cr_assert_eq(memcmp(ha, hb, n * sizeof(uint64_t)), 0);
    setenv("COMMPRESS_DENSITY", "0.02", 1);
    cp_config_parse_env(&b, err, sizeof(err));
    cp_config_hashes(&b, hb, names);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++)
        if (ha[i] != hb[i]) {
            cr_assert_str_eq(names[i], "COMMPRESS_DENSITY");
            diff++;
        }
    cr_assert_eq(diff, 1);
}
