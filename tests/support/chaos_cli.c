/* chaos_cli.c: see chaos_cli.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos_cli.h"

const char *chaos_cli_path(void)
{
    const char *cli = getenv("TIDEPOOL_CLI");
    return cli != NULL && access(cli, X_OK) == 0 ? cli : NULL;
}

int chaos_cli_run(const char *cli, const char *scenario, const chaos_cli_opts *o, char *out,
                  size_t cap)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = cli;
    argv[n++] = "chaos";
    argv[n++] = "run";
    argv[n++] = scenario;
    const char *flags[] = {"--url", "--client", "--server-log", "--restart-cmd"};
    const char *vals[] = {o->url, o->client, o->server_log, o->restart_cmd};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (vals[i] != NULL) {
            argv[n++] = flags[i];
            argv[n++] = vals[i];
        }
    argv[n++] = "--json";
    argv[n] = NULL;
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 128;
    pid_t pid = fork();
    if (pid < 0)
        return 128;
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]); /* only as stdout: a server the run starts must not hold it */
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t got = 0;
    for (;;) {
        ssize_t r = read(pipefd[0], out + got, cap - 1 - got);
        if (r <= 0 || (got += (size_t)r) + 1 >= cap)
            break;
    }
    out[got] = '\0';
    close(pipefd[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return 128;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int chaos_cli_run_dir(const char *cli, const char *subdir, const chaos_cli_opts *o,
                      int *failed)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", TIDEPOOL_SOURCE_DIR, subdir);
    *failed = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int ran = 0;
    static char out[65536];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int st = chaos_cli_run(cli, path, o, out, sizeof out);
        printf("%s/%s (%s): exit %d: %s", subdir, e->d_name,
               o->client != NULL ? o->client : "as written", st, out);
        if (st != 0 || strstr(out, "\"pass\": true}") == NULL || strstr(out, "\"pass\": false") != NULL)
            (*failed)++;
        ran++;
    }
    closedir(d);
    fflush(stdout);
    return ran;
}
