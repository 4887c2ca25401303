/* pidfd.c: which sockets belong to a process, and which process holds a socket. Each
 * open socket appears in /proc/PID/fd/ as a link to "socket:[INODE]"; the same inode is
 * idiag_inode in the sock_diag dump (and the inode column of /proc/net/tcp). Reading
 * another user's fds needs privileges, which is reported as an error rather than as "no
 * sockets" for one pid, and skipped in the host-wide scan. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag_internal.h"
#include "net/net.h" /* tp__errno_text */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Returns the inode of a "socket:[N]" link target, 0 for anything else. */
static uint32_t socket_inode(const char *target)
{
    unsigned long ino;
    char close;
    if (sscanf(target, "socket:[%lu%c", &ino, &close) != 2 || close != ']')
        return 0;
    return (uint32_t)ino;
}

tp_err tp__diag_pid_inodes(int pid, uint32_t **out, size_t *n, tp_errinfo *err)
{
    *out = NULL;
    *n = 0;
    if (pid <= 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pid %d: must be positive", pid);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        char ebuf[128];
        if (e == ENOENT)
            return tp_errinfo_set(err, TP_EINVAL, e, "no process %d", pid);
        return tp_errinfo_set(err, TP_ESYS, e, "%s: %s", dir, tp__errno_text(e, ebuf, sizeof ebuf));
    }
    uint32_t *v = NULL;
    size_t cap = 0, len = 0;
    tp_err rc = TP_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char target[64];
        ssize_t tl = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
        if (tl <= 0)
            continue; /* the fd was closed meanwhile */
        target[tl] = '\0';
        uint32_t ino = socket_inode(target);
        if (ino == 0)
            continue;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            uint32_t *nv = tp__realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = tp_errinfo_set(err, TP_ENOMEM, ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[len++] = ino;
    }
    closedir(d);
    if (rc != TP_OK) {
        tp__free(v);
        return rc;
    }
    if (len > 1)
        qsort(v, len, sizeof *v, cmp_u32);
    *out = v;
    *n = len;
    return TP_OK;
}

static int cmp_inode(const void *a, const void *b)
{
    uint32_t x = ((const tp__diag_inode_pid *)a)->inode;
    uint32_t y = ((const tp__diag_inode_pid *)b)->inode;
    return x < y ? -1 : x > y;
}

tp_err tp__diag_inode_owners(tp__diag_inode_pid **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return TP_OK;
    tp__diag_inode_pid *v = NULL;
    size_t len = 0, cap = 0;
    tp_err rc = TP_OK;
    struct dirent *de;
    while (rc == TP_OK && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        int pid = atoi(de->d_name);
        uint32_t *inodes = NULL;
        size_t ni = 0;
        if (tp__diag_pid_inodes(pid, &inodes, &ni, NULL) != TP_OK)
            continue; /* gone, or not ours to read */
        if (len + ni > cap) {
            size_t ncap = cap ? cap : 256;
            while (ncap < len + ni)
                ncap *= 2;
            tp__diag_inode_pid *nv = tp__realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = TP_ENOMEM;
                tp__free(inodes);
                break;
            }
            v = nv;
            cap = ncap;
        }
        for (size_t i = 0; i < ni; i++)
            v[len++] = (tp__diag_inode_pid){inodes[i], pid};
        tp__free(inodes);
    }
    closedir(d);
    if (rc != TP_OK) {
        tp__free(v);
        return rc;
    }
    if (len > 1)
        qsort(v, len, sizeof *v, cmp_inode);
    *out = v;
    *n = len;
    return TP_OK;
}

int tp__diag_inode_owner(const tp__diag_inode_pid *v, size_t n, uint32_t inode)
{
    if (inode == 0 || n == 0)
        return 0;
    tp__diag_inode_pid key = {inode, 0};
    const tp__diag_inode_pid *hit = bsearch(&key, v, n, sizeof *v, cmp_inode);
    return hit != NULL ? hit->pid : 0;
}

void tp__diag_read_comm(int pid, char comm[16])
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    comm[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(comm, 16, f) != NULL)
        comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
}
