/* main.c - the nascent command-line program: dispatches `nascent COMMAND ...` to cmd_<name>.c.
 * Only the cli module prints or exits. */
#include "cli_int.h"

#include <stdio.h>
#include <string.h>

static const cli_command commands[] = {
    {"train", "train one architecture on a dataset", cmd_train},
    {"eval", "evaluate a checkpoint on a dataset split", cmd_eval},
    {"info", "params, MACs, memory, canonical form and hash of an architecture", cmd_info},
    {"search", "search a space with a strategy and an evaluator", cmd_search},
    {"benchmark", "many seeded searches per strategy on a benchmark table", cmd_benchmark},
    {"proxies", "zero-cost proxy scores of architectures", cmd_proxies},
    {"correlate", "rank correlation of two score columns", cmd_correlate},
    {"latency", "measure or predict latency; build lookup tables", cmd_latency},
    {"help", "show this help", cmd_help},
};
static const int n_commands = (int)(sizeof(commands) / sizeof(commands[0]));

static void print_usage(FILE *out) {
    fprintf(out, "nascent %s - neural architecture search in C\n\n", NAS_VERSION_STRING);
    fprintf(out, "usage: nascent COMMAND [OPTIONS]    (nascent COMMAND --help for its options)\n\n");
    fprintf(out, "commands:\n");
    for (int i = 0; i < n_commands; i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
}

int cmd_help(int argc, char **argv) {
    (void)argc;
    (void)argv;
    print_usage(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nascent %s\n", NAS_VERSION_STRING);
        return 0;
    }
    for (int i = 0; i < n_commands; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "nascent: unknown command '%s' (try nascent --help)\n", argv[1]);
    return 2;
}
