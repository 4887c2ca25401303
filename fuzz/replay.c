/* replay.c: a main() for libFuzzer targets built without libFuzzer. It calls
 * LLVMFuzzerTestOneInput once per file named on the command line, descending into
 * directories, so a target's corpus runs as an ordinary regression test with any
 * compiler (ctest: fuzz_http_response_corpus). A crash or a failed invariant aborts;
 * finding no input at all is an error too (a wrong path must not pass silently). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t replayed;

/* run_file: reads path whole and hands it to the target; false if unreadable. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 0;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            fprintf(stderr, "%s: out of memory\n", path);
            return 0;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        uint8_t *p = realloc(buf, cap);
        if (p == NULL)
            free(buf);
        buf = p;
    }
    int ok = !ferror(f);
    fclose(f);
    if (ok) {
        LLVMFuzzerTestOneInput(buf, len);
        replayed++;
    } else {
        fprintf(stderr, "%s: read error\n", path);
    }
    free(buf);
    return ok;
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return 0;
    }
    int ok = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') /* ".", "..", and hidden files such as .gitkeep */
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *child = malloc(n);
        if (child == NULL) {
            ok = 0;
            break;
        }
        snprintf(child, n, "%s/%s", path, e->d_name);
        ok &= run_path(child);
        free(child);
    }
    closedir(d);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    int ok = 1;
    for (int i = 1; i < argc; i++)
        ok &= run_path(argv[i]);
    printf("replayed %zu inputs\n", replayed);
    return ok && replayed > 0 ? 0 : 1;
}
