/* commpress-info: prints every COMMPRESS_* variable with its current value
 * and documentation (--markdown: the table of docs/configuration.md). */
#include <stdio.h>
#include <string.h>

#include "plugin/config.h"

int main(int argc, char **argv)
{
    cp_config_t cfg;
    char err[512];
    int md = argc > 1 && strcmp(argv[1], "--markdown") == 0;

    if (md) {
        cp_config_defaults(&cfg);
    } else if (cp_config_parse_env(&cfg, err, sizeof(err)) != CP_OK) {
        fprintf(stderr, "commpress: error: %s\n", err);
        return 1;
    }
    cp_config_print(&cfg, stdout, md);
    return 0;
}
