/* quote.c - quoting for the program's machine-readable output: a JSON string literal and a CSV
 * field. Architecture texts carry quotes and commas (mbnet's is JSON), so every command that
 * writes one into JSON or CSV goes through these. */
#include "cli/cli_int.h"

#include <stdio.h>

void cli_json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

void cli_csv_field(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') {
            fputc('"', out); /* RFC 4180: a quote inside a quoted field is doubled */
        }
        fputc(*s, out);
    }
    fputc('"', out);
}
