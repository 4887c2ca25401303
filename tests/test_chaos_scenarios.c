/* test_chaos_scenarios.c: every scenario shipped under scenarios/ run by the CLI
 * (`tidepool chaos run FILE --url ... --json`) against the fixture's nginx: each must
 * exit 0 with every verdict passing. Then a scenario that must fail (no error allowed,
 * while every connection is reset five times under load) exits 1 with that verdict
 * failing: the verdicts can fail. Skipped (77) without the fixture or the CLI. */
#include <dirent.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidepool/tidepool.h>

#include "support/nginx_env.h"
#include "support/test_util.h"

static nginx_env env;
static const char *cli;

/* Runs `tidepool chaos run path --url URL --json`: its exit status, its last line. */
static int run_cli(const char *path, char *out, size_t cap)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", (unsigned)env.http_port);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        execl(cli, cli, "chaos", "run", path, "--url", url, "--json", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(pipefd[0], out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n + 1 >= cap)
            break;
    }
    out[n] = '\0';
    close(pipefd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_shipped_scenarios_pass(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/scenarios", TIDEPOOL_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int ran = 0;
    static char out[65536];
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int st = run_cli(path, out, sizeof out);
        print_message("%s: exit %d: %s", e->d_name, st, out);
        assert_int_equal(st, 0);
        assert_non_null(strstr(out, "\"pass\": true}"));
        assert_null(strstr(out, "\"pass\": false"));
        ran++;
    }
    closedir(d);
    assert_true(ran >= 9); /* restart, resets, latency, black hole, half-open, stop-reading,
                              bandwidth, refused and delayed accepts, mixed */
}

static void test_a_failing_verdict_fails(void **state)
{
    (void)state;
    char path[] = "/tmp/tp-chaos-scenario-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"name\": \"no error allowed\", \"method\": \"POST\", \"concurrency\": 4,"
                       " \"duration\": \"1500ms\", \"allowed_errors\": [], \"schedule\": ["
                       "{\"at\": \"200ms\", \"reset_all\": true},"
                       "{\"at\": \"400ms\", \"reset_all\": true},"
                       "{\"at\": \"600ms\", \"reset_all\": true},"
                       "{\"at\": \"800ms\", \"reset_all\": true},"
                       "{\"at\": \"1s\", \"reset_all\": true}]}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    static char out[65536];
    int st = run_cli(path, out, sizeof out);
    unlink(path);
    print_message("exit %d: %s", st, out);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "{\"name\": \"only_explained_errors\", \"pass\": false"));
    assert_non_null(strstr(out, "{\"name\": \"no_misdelivery\", \"pass\": true"));
}

int main(void)
{
    if (nginx_env_load(&env) != 0)
        return 77;
    cli = getenv("TIDEPOOL_CLI");
    if (cli == NULL || access(cli, X_OK) != 0) {
        fprintf(stderr, "TIDEPOOL_CLI not set: skipped\n");
        return 77;
    }
    tu_watchdog(280);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_scenarios_pass),
        cmocka_unit_test(test_a_failing_verdict_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
