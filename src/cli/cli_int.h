/* cli_int.h - shared by the command files of the program: the command table entry and the
 * option helpers. Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input,
 * 3 training diverged (NaN/inf loss). */
#ifndef NAS_CLI_INT_H
#define NAS_CLI_INT_H

#include "nascent.h"

#include <stdio.h>

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} cli_command;

int cmd_help(int argc, char **argv);
/* One file per command, src/cli/cmd_<name>.c. */
#define CLI_COMMAND(name) int cmd_##name(int argc, char **argv);
CLI_COMMAND(train)
CLI_COMMAND(eval)
CLI_COMMAND(info)
CLI_COMMAND(search)
CLI_COMMAND(benchmark)
CLI_COMMAND(proxies)
CLI_COMMAND(correlate)
CLI_COMMAND(latency)
#undef CLI_COMMAND

/* quote.c: s as a JSON string literal / as a quoted CSV field (quotes doubled). */
void cli_json_string(FILE *out, const char *s);
void cli_csv_field(FILE *out, const char *s);

#endif
