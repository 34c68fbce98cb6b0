/* csv_scan.h - a naive scan of the published NB201 CSVs for tests that check nascent's readers
 * against the file itself: the value in column `column` of the row whose second field (arch_str)
 * is `arch`, or NAN. Slow and simple on purpose (an independent reading, not nascent's). */
#ifndef NAS_TEST_CSV_SCAN_H
#define NAS_TEST_CSV_SCAN_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double csv_scan(const char *path, const char *column, const char *arch) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NAN;
    }
    static char line[8192];
    int col = -1;
    double v = NAN;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL;
        int c = 0, match = 0;
        for (char *tok = strtok_r(line, ",\n", &save); tok != NULL;
             tok = strtok_r(NULL, ",\n", &save), c++) {
            col = col < 0 && strcmp(tok, column) == 0 ? c : col;
            match = c == 1 ? strcmp(tok, arch) == 0 : match;
            v = match && c == col ? atof(tok) : v;
        }
        if (match) {
            break;
        }
    }
    fclose(f);
    return v;
}

#endif
