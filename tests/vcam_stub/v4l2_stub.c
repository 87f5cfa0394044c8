/* A user-space stand-in for v4l2loopback output devices, loaded with LD_PRELOAD.
 *
 * It answers the calls pyvirtualcam's compiled v4l2loopback backend makes (open, ioctl VIDIOC_QUERYCAP /
 * VIDIOC_S_FMT / VIDIOC_G_FMT, write, close), plus stat/access on the device node, so the real backend
 * runs end to end where the kernel has no V4L2. Frames written to /dev/videoN are appended to $VCAM_STUB_DIR/videoN.yuv and every call is logged,
 * one line each, to $VCAM_STUB_DIR/videoN.log.
 *
 * Environment:
 *   VCAM_STUB_DIR      folder for frames and logs; sysfs lookups under /sys/class/video4linux/ are served
 *                      from $VCAM_STUB_DIR/sys/ (so videoN/name gives the card label)
 *   VCAM_STUB_DEVICES  comma-separated device numbers that exist, e.g. "3,7"; other /dev/video* are ENOENT
 *   VCAM_STUB_BUSY     comma-separated device numbers whose open() fails with EBUSY
 *
 * Opened read-only, /dev/videoN is the capture side: VIDIOC_G_FMT (capture) gives the format the writer set
 * and read() returns the newest whole frame written so far (EAGAIN before the first one), as v4l2loopback's
 * read I/O does for a reader.
 *
 * While $VCAM_STUB_DIR/videoN.gone exists, /dev/videoN has vanished (as when the module is unloaded):
 * stat/access/open say ENOENT and writes to an fd already open fail with ENODEV.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 4096
#define SYSFS_PREFIX "/sys/class/video4linux/"
#define DEV_PREFIX "/dev/video"

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef int (*close_fn)(int);
typedef int (*access_fn)(const char *, int);
typedef int (*faccessat_fn)(int, const char *, int, int);
typedef int (*stat_fn)(const char *, struct stat *);
typedef int (*stat64_fn)(const char *, struct stat64 *);
typedef int (*fstatat_fn)(int, const char *, struct stat *, int);
typedef int (*fstatat64_fn)(int, const char *, struct stat64 *, int);
typedef int (*xstat_fn)(int, const char *, struct stat *);
typedef int (*xstat64_fn)(int, const char *, struct stat64 *);

struct stub_dev {
    int num;      /* N of /dev/videoN, -1 when the fd is not ours */
    int log_fd;
    struct v4l2_pix_format pix;
    int configured;
    int reader;   /* the capture side: reads frames back */
};

static struct stub_dev g_fds[MAX_FD];
static int g_ready; /* set once stub_init ran: other libraries' constructors may read and write before */
static open_fn real_open, real_open64;
static openat_fn real_openat, real_openat64;
static ioctl_fn real_ioctl;
static write_fn real_write;
static read_fn real_read;
static close_fn real_close;
static access_fn real_access;
static faccessat_fn real_faccessat;
static stat_fn real_stat, real_lstat;
static stat64_fn real_stat64, real_lstat64;
static fstatat_fn real_fstatat;
static fstatat64_fn real_fstatat64;
static xstat_fn real_xstat, real_lxstat;
static xstat64_fn real_xstat64, real_lxstat64;

__attribute__((constructor)) static void stub_init(void) {
    if (g_ready) return;
    real_open = (open_fn)dlsym(RTLD_NEXT, "open");
    real_open64 = (open_fn)dlsym(RTLD_NEXT, "open64");
    real_openat = (openat_fn)dlsym(RTLD_NEXT, "openat");
    real_openat64 = (openat_fn)dlsym(RTLD_NEXT, "openat64");
    real_ioctl = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
    real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    real_read = (read_fn)dlsym(RTLD_NEXT, "read");
    real_close = (close_fn)dlsym(RTLD_NEXT, "close");
    real_access = (access_fn)dlsym(RTLD_NEXT, "access");
    real_faccessat = (faccessat_fn)dlsym(RTLD_NEXT, "faccessat");
    real_stat = (stat_fn)dlsym(RTLD_NEXT, "stat");
    real_lstat = (stat_fn)dlsym(RTLD_NEXT, "lstat");
    real_stat64 = (stat64_fn)dlsym(RTLD_NEXT, "stat64");
    real_lstat64 = (stat64_fn)dlsym(RTLD_NEXT, "lstat64");
    real_fstatat = (fstatat_fn)dlsym(RTLD_NEXT, "fstatat");
    real_fstatat64 = (fstatat64_fn)dlsym(RTLD_NEXT, "fstatat64");
    real_xstat = (xstat_fn)dlsym(RTLD_NEXT, "__xstat");
    real_lxstat = (xstat_fn)dlsym(RTLD_NEXT, "__lxstat");
    real_xstat64 = (xstat64_fn)dlsym(RTLD_NEXT, "__xstat64");
    real_lxstat64 = (xstat64_fn)dlsym(RTLD_NEXT, "__lxstat64");
    for (int i = 0; i < MAX_FD; i++) g_fds[i].num = -1;
    g_ready = 1;
}

/* Another library's constructor may call us before stub_init: resolve everything on first use then. */
static void ensure_init(void) {
    if (!g_ready) stub_init();
}

static int is_ours(int fd) { return g_ready && fd >= 0 && fd < MAX_FD && g_fds[fd].num >= 0; }

static const char *stub_dir(void) {
    const char *d = getenv("VCAM_STUB_DIR");
    return d ? d : "/tmp";
}

static int in_list(const char *env, int num) {
    const char *list = getenv(env);
    if (!list) return 0;
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v == num) return 1;
        p = (*end == ',') ? end + 1 : end;
    }
    return 0;
}

/* N for "/dev/videoN", else -1. */
static int video_num(const char *path) {
    if (!path || strncmp(path, DEV_PREFIX, strlen(DEV_PREFIX)) != 0) return -1;
    const char *digits = path + strlen(DEV_PREFIX);
    if (!*digits) return -1;
    for (const char *c = digits; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    return atoi(digits);
}

static void logf_dev(struct stub_dev *d, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    if (d->log_fd >= 0) real_write(d->log_fd, line, n);
}

static void card_label(int num, char *out, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/sys/video%d/name", stub_dir(), num);
    snprintf(out, size, "Dummy video device (0x%04x)", num);
    int fd = real_open(path, O_RDONLY);
    if (fd < 0) return;
    ssize_t n = real_read(fd, out, size - 1);
    real_close(fd);
    if (n <= 0) return;
    out[n] = 0;
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
}

static int is_gone(int num) {
    char path[1024];
    snprintf(path, sizeof path, "%s/video%d.gone", stub_dir(), num);
    int fd = real_open(path, O_RDONLY);
    if (fd < 0) return 0;
    real_close(fd);
    return 1;
}

static int device_exists(int num) { return in_list("VCAM_STUB_DEVICES", num) && !is_gone(num); }

/* Open a stand-in device; returns an fd to the frames file, or -1 with errno set. */
static int open_device(int num, int flags) {
    if (!device_exists(num)) {
        errno = ENOENT;
        return -1;
    }
    if (in_list("VCAM_STUB_BUSY", num)) {
        errno = EBUSY;
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/video%d.yuv", stub_dir(), num);
    int reader = (flags & O_ACCMODE) == O_RDONLY;
    int fd = reader ? real_open(path, O_RDONLY | O_CREAT, 0644) : real_open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return -1;
    if (fd >= MAX_FD) {
        real_close(fd);
        errno = EMFILE;
        return -1;
    }
    snprintf(path, sizeof path, "%s/video%d.log", stub_dir(), num);
    struct stub_dev *d = &g_fds[fd];
    memset(d, 0, sizeof *d);
    d->num = num;
    d->reader = reader;
    d->log_fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    logf_dev(d, reader ? "OPEN reader" : "OPEN");
    return fd;
}

/* sysfs paths are served from the stub folder; returns 1 and fills `out` when rewritten. */
static int rewrite_sysfs(const char *path, char *out, size_t size) {
    if (!path || strncmp(path, SYSFS_PREFIX, strlen(SYSFS_PREFIX)) != 0) return 0;
    snprintf(out, size, "%s/sys/%s", stub_dir(), path + strlen(SYSFS_PREFIX));
    return 1;
}

static int mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

static int do_open(open_fn real, const char *path, int flags, int mode) {
    int num = video_num(path);
    if (num >= 0) return open_device(num, flags);
    char redirected[1024];
    if (rewrite_sysfs(path, redirected, sizeof redirected)) return real(redirected, flags, mode);
    return real(path, flags, mode);
}

static int do_openat(openat_fn real, int dirfd, const char *path, int flags, int mode) {
    int num = video_num(path);
    if (num >= 0) return open_device(num, flags);
    char redirected[1024];
    if (rewrite_sysfs(path, redirected, sizeof redirected)) return real(dirfd, redirected, flags, mode);
    return real(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...) {
    ensure_init();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return do_open(real_open, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    ensure_init();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return do_open(real_open64, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    ensure_init();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(real_openat, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    ensure_init();
    va_list ap;
    va_start(ap, flags);
    int mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(real_openat64, dirfd, path, flags, mode);
}

static const char *fourcc_str(__u32 f, char out[5]) {
    for (int i = 0; i < 4; i++) out[i] = (char)((f >> (8 * i)) & 0xff);
    out[4] = 0;
    return out;
}

static __u32 frame_size(const struct v4l2_pix_format *p) {
    switch (p->pixelformat) {
        case V4L2_PIX_FMT_YUV420:
        case V4L2_PIX_FMT_NV12: return p->width * p->height * 3 / 2;
        case V4L2_PIX_FMT_YUYV:
        case V4L2_PIX_FMT_UYVY: return p->width * p->height * 2;
        case V4L2_PIX_FMT_GREY: return p->width * p->height;
        default: return 0;
    }
}

/* The writer's format, for readers in any process: $VCAM_STUB_DIR/videoN.fmt holds the v4l2_pix_format. */
static void save_fmt(int num, const struct v4l2_pix_format *p) {
    char path[1024];
    snprintf(path, sizeof path, "%s/video%d.fmt", stub_dir(), num);
    int fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    real_write(fd, p, sizeof *p);
    real_close(fd);
}

static int load_fmt(int num, struct v4l2_pix_format *p) {
    char path[1024];
    snprintf(path, sizeof path, "%s/video%d.fmt", stub_dir(), num);
    int fd = real_open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = real_read(fd, p, sizeof *p);
    real_close(fd);
    return n == (ssize_t)sizeof *p;
}

static int device_ioctl(int fd, struct stub_dev *d, unsigned long req, void *arg) {
    char fcc[5];
    if (req == VIDIOC_QUERYCAP) {
        struct v4l2_capability *cap = arg;
        memset(cap, 0, sizeof *cap);
        snprintf((char *)cap->driver, sizeof cap->driver, "v4l2 loopback");
        card_label(d->num, (char *)cap->card, sizeof cap->card);
        snprintf((char *)cap->bus_info, sizeof cap->bus_info, "platform:v4l2loopback-%03d", d->num);
        cap->version = 0x000c07;
        cap->device_caps = V4L2_CAP_VIDEO_OUTPUT | V4L2_CAP_READWRITE | V4L2_CAP_STREAMING;
        cap->capabilities = cap->device_caps | V4L2_CAP_DEVICE_CAPS;
        logf_dev(d, "QUERYCAP card=%s", (char *)cap->card);
        return 0;
    }
    if (req == VIDIOC_S_FMT || req == VIDIOC_TRY_FMT) {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_OUTPUT) {
            logf_dev(d, "S_FMT bad type %u", f->type);
            errno = EINVAL;
            return -1;
        }
        struct v4l2_pix_format *p = &f->fmt.pix;
        if (p->width == 0 || p->height == 0 || frame_size(p) == 0) {
            logf_dev(d, "S_FMT rejected %ux%u %s", p->width, p->height, fourcc_str(p->pixelformat, fcc));
            errno = EINVAL;
            return -1;
        }
        p->field = V4L2_FIELD_NONE;
        p->bytesperline = p->pixelformat == V4L2_PIX_FMT_YUYV || p->pixelformat == V4L2_PIX_FMT_UYVY
                              ? p->width * 2
                              : p->width;
        p->sizeimage = frame_size(p);
        p->colorspace = V4L2_COLORSPACE_SRGB;
        if (req == VIDIOC_S_FMT) {
            d->pix = *p;
            d->configured = 1;
            save_fmt(d->num, p);
        }
        logf_dev(d, "%s %ux%u %s sizeimage=%u", req == VIDIOC_S_FMT ? "S_FMT" : "TRY_FMT", p->width,
                 p->height, fourcc_str(p->pixelformat, fcc), p->sizeimage);
        return 0;
    }
    if (req == VIDIOC_G_FMT && d->reader) {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || !load_fmt(d->num, &f->fmt.pix)) {
            logf_dev(d, "G_FMT capture: no format yet");
            errno = EINVAL;
            return -1;
        }
        logf_dev(d, "G_FMT capture");
        return 0;
    }
    if (req == VIDIOC_G_FMT) {
        struct v4l2_format *f = arg;
        if (!d->configured || f->type != V4L2_BUF_TYPE_VIDEO_OUTPUT) {
            errno = EINVAL;
            return -1;
        }
        f->fmt.pix = d->pix;
        logf_dev(d, "G_FMT");
        return 0;
    }
    logf_dev(d, "IOCTL unsupported 0x%lx on fd %d", req, fd);
    errno = ENOTTY;
    return -1;
}

int ioctl(int fd, unsigned long req, ...) {
    ensure_init();
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (is_ours(fd)) return device_ioctl(fd, &g_fds[fd], req, arg);
    return real_ioctl(fd, req, arg);
}

ssize_t write(int fd, const void *buf, size_t count) {
    ensure_init();
    if (is_ours(fd)) {
        struct stub_dev *d = &g_fds[fd];
        if (is_gone(d->num)) {
            logf_dev(d, "WRITE on a vanished device");
            errno = ENODEV;
            return -1;
        }
        if (!d->configured) {
            logf_dev(d, "WRITE before S_FMT");
            errno = EINVAL;
            return -1;
        }
        logf_dev(d, "WRITE %zu%s", count, count == d->pix.sizeimage ? "" : " (size mismatch)");
        size_t done = 0;
        while (done < count) {
            ssize_t n = real_write(fd, (const char *)buf + done, count - done);
            if (n < 0) return -1;
            done += (size_t)n;
        }
        return (ssize_t)count;
    }
    return real_write(fd, buf, count);
}

ssize_t read(int fd, void *buf, size_t count) {
    ensure_init();
    if (!is_ours(fd)) {
        return real_read(fd, buf, count);
    }
    struct stub_dev *d = &g_fds[fd];
    struct v4l2_pix_format pix;
    if (is_gone(d->num)) {
        errno = ENODEV;
        return -1;
    }
    if (!d->reader || !load_fmt(d->num, &pix) || pix.sizeimage == 0) {
        errno = EINVAL;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    off_t frames = st.st_size / (off_t)pix.sizeimage;
    if (frames == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t n = count < pix.sizeimage ? count : pix.sizeimage;
    ssize_t got = pread(fd, buf, n, (frames - 1) * (off_t)pix.sizeimage);
    logf_dev(d, "READ %zd", got);
    return got;
}

int close(int fd) {
    ensure_init();
    if (is_ours(fd)) {
        struct stub_dev *d = &g_fds[fd];
        logf_dev(d, "CLOSE");
        if (d->log_fd >= 0) real_close(d->log_fd);
        d->num = -1;
    }
    return real_close(fd);
}

/* stat and access on /dev/videoN: a character device (major 81, as V4L2) while it exists. */
#define FILL_STAT(st, num)                                     \
    do {                                                       \
        memset((st), 0, sizeof *(st));                         \
        (st)->st_mode = S_IFCHR | 0660;                        \
        (st)->st_rdev = makedev(81, (unsigned)(num));          \
        (st)->st_nlink = 1;                                    \
        (st)->st_blksize = 4096;                               \
    } while (0)

#define STAT_DEVICE(path, st)                  \
    do {                                       \
        int num_ = video_num(path);            \
        if (num_ >= 0) {                       \
            if (!device_exists(num_)) {        \
                errno = ENOENT;                \
                return -1;                     \
            }                                  \
            FILL_STAT(st, num_);               \
            return 0;                          \
        }                                      \
    } while (0)

int stat(const char *path, struct stat *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_stat(path, st);
}
int lstat(const char *path, struct stat *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_lstat(path, st);
}
int stat64(const char *path, struct stat64 *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_stat64(path, st);
}
int lstat64(const char *path, struct stat64 *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_lstat64(path, st);
}
int fstatat(int dirfd, const char *path, struct stat *st, int flags) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_fstatat(dirfd, path, st, flags);
}
int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_fstatat64(dirfd, path, st, flags);
}
/* Before glibc 2.33, stat() was an inline call to these. */
int __xstat(int ver, const char *path, struct stat *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_xstat(ver, path, st);
}
int __lxstat(int ver, const char *path, struct stat *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_lxstat(ver, path, st);
}
int __xstat64(int ver, const char *path, struct stat64 *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_xstat64(ver, path, st);
}
int __lxstat64(int ver, const char *path, struct stat64 *st) {
    ensure_init();
    STAT_DEVICE(path, st);
    return real_lxstat64(ver, path, st);
}

int access(const char *path, int mode) {
    ensure_init();
    int num = video_num(path);
    if (num >= 0) {
        if (device_exists(num)) return 0;
        errno = ENOENT;
        return -1;
    }
    return real_access(path, mode);
}

int faccessat(int dirfd, const char *path, int mode, int flags) {
    ensure_init();
    int num = video_num(path);
    if (num >= 0) {
        if (device_exists(num)) return 0;
        errno = ENOENT;
        return -1;
    }
    return real_faccessat(dirfd, path, mode, flags);
}
