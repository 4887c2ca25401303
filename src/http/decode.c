/* decode.c: the content decoder of decode.h. Parses Content-Encoding into a stack of
 * layers, runs zlib (gzip, deflate), brotli and zstd over the body as it is fed, chains
 * the layers through one fixed buffer each, and enforces the size and ratio bounds on
 * what every layer produces. */
#include "http/decode.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <brotli/decode.h>
#define ZLIB_CONST /* next_in is then const, as our input is */
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* Each layer decodes into a buffer of this size and hands it on before decoding more.
 * 16 KiB amortises the per-call cost of the codecs and the callback, and bounds the
 * granularity of the size and ratio checks. */
#define LAYER_BUF ((size_t)16 * 1024)

/* The ratio bound applies once a layer has produced more than this: small bodies
 * legitimately compress far better than any sane ratio (a page of zeros). */
#define RATIO_FLOOR ((uint64_t)1 << 20)

/* zstd frames may ask for a window of at most 2^23 bytes (8 MiB), the bound browsers
 * use and RFC 9659 asks HTTP decoders to support; a larger request is refused before
 * zstd allocates it. */
#define ZSTD_WINDOW_LOG_MAX 23

/* Codec calls in a row that neither consume nor produce a byte before the decoder is
 * declared stuck. The codecs here always progress, but a loop that depends on a
 * library's promise gets a bound. */
#define STALL_MAX 64

static const char *const k_names[] = {
    [TP__CODING_IDENTITY] = "identity", [TP__CODING_GZIP] = "gzip",
    [TP__CODING_DEFLATE] = "deflate",   [TP__CODING_BR] = "br",
    [TP__CODING_ZSTD] = "zstd",
};

/* One decoding step: one coding undone. */
typedef struct layer {
    tp__coding coding;
    unsigned char *buf; /* LAYER_BUF bytes: output not yet handed on */
    uint64_t in_total;  /* encoded bytes this layer consumed */
    uint64_t produced;  /* decoded bytes it handed on */
    unsigned units;     /* gzip members or zstd frames completed */
    bool ended;         /* at the end of a stream: gzip between members, zstd between
                         * frames, deflate and br done for good */
    bool ready;         /* codec initialised (zlib: inflateEnd is owed); deflate's only
                         * once its first two bytes have come */
    /* deflate only: the first byte, kept while the second has not come to tell the
     * zlib format from raw deflate. */
    bool have_first;
    unsigned char first;
    z_stream z;     /* gzip, deflate */
    gz_header head; /* gzip: head.done tells whether a member's header is complete */
    BrotliDecoderState *br;
    ZSTD_DStream *zs;
} layer;

struct tp__decoder {
    int n;                               /* layers in use */
    layer layers[TP__DECODE_MAX_LAYERS]; /* [0] decodes first: the last coding applied */
    uint64_t max_out;                    /* 0: none */
    unsigned max_ratio;                  /* 0: none */
    uint64_t encoded;                    /* consumed by layers[0] */
    uint64_t decoded;                    /* delivered to out */
    tp__decode_out_fn out;               /* of the feed in progress */
    void *ud;
    tp_err sticky;   /* the first error; returned again by every later call */
    tp_errinfo fail; /* its detail, kept even when the caller passed no tp_errinfo */
    bool finished;
    char name[48]; /* "gzip, br": 4 names of at most 7 bytes and 3 separators fit */
};

static tp_err pump(tp__decoder *d, int i, const unsigned char *in, size_t n);

/* ---- allocation: zlib and brotli allocate through the funnel --------------------- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size != 0 && items > SIZE_MAX / size)
        return Z_NULL;
    return tp__malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf ptr)
{
    (void)opaque;
    tp__free(ptr);
}

static void *br_alloc(void *opaque, size_t size)
{
    (void)opaque;
    return tp__malloc(size);
}

static void br_free(void *opaque, void *ptr)
{
    (void)opaque;
    tp__free(ptr);
}

/* ---- Content-Encoding ------------------------------------------------------------ */

/* lookup: the coding named by the n bytes at s (case-insensitive); false if unknown. */
static bool lookup(const char *s, size_t n, tp__coding *c)
{
    static const struct {
        const char *name;
        tp__coding coding;
    } k_table[] = {
        {"gzip", TP__CODING_GZIP}, {"x-gzip", TP__CODING_GZIP}, {"deflate", TP__CODING_DEFLATE},
        {"br", TP__CODING_BR},     {"zstd", TP__CODING_ZSTD},   {"identity", TP__CODING_IDENTITY},
    };
    for (size_t k = 0; k < sizeof k_table / sizeof k_table[0]; k++) {
        if (strlen(k_table[k].name) == n && strncasecmp(s, k_table[k].name, n) == 0) {
            *c = k_table[k].coding;
            return true;
        }
    }
    return false;
}

/* printable: the n bytes at s made safe to quote in a message (a server chose them):
 * at most cap - 1 bytes, bytes outside printable ASCII shown as '?'. */
static const char *printable(const char *s, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    for (; k < n && k + 1 < cap; k++)
        buf[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    buf[k] = '\0';
    return buf;
}

/* parse_codings: the non-identity codings of the value, in list order (applied first
 * first). Elements are separated by commas; whitespace around them and empty elements
 * are ignored (RFC 9110 5.6.1). */
static tp_err parse_codings(const char *s, size_t len, tp__coding *list, int *n, tp_errinfo *err)
{
    *n = 0;
    size_t pos = 0;
    while (pos <= len) {
        size_t end = pos;
        while (end < len && s[end] != ',')
            end++;
        size_t a = pos, b = end;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        pos = end + 1;
        if (a == b)
            continue;
        tp__coding c;
        if (!lookup(s + a, b - a, &c)) {
            char q[40];
            return tp_errinfo_set(err, TP_EPROTO, 0, "unsupported Content-Encoding \"%s\"",
                                  printable(s + a, b - a, q, sizeof q));
        }
        if (c == TP__CODING_IDENTITY)
            continue;
        if (*n == TP__DECODE_MAX_LAYERS)
            return tp_errinfo_set(err, TP_EPROTO, 0,
                                  "Content-Encoding lists more than %d codings (\"%s\" is one "
                                  "too many)",
                                  TP__DECODE_MAX_LAYERS, k_names[c]);
        list[(*n)++] = c;
    }
    return TP_OK;
}

/* ---- codec set-up ---------------------------------------------------------------- */

/* zlib_init: inflateInit2 with window_bits (gzip: 16 + 15; zlib: 15; raw: -15). */
static tp_err zlib_init(tp__decoder *d, layer *l, int window_bits)
{
    l->z.zalloc = z_alloc;
    l->z.zfree = z_free;
    l->z.opaque = Z_NULL;
    int zr = inflateInit2(&l->z, window_bits);
    if (zr == Z_MEM_ERROR)
        return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory starting the %s decoder",
                              k_names[l->coding]);
    if (zr != Z_OK)
        return tp_errinfo_set(&d->fail, TP_ESTATE, 0, "zlib refused to start (%d: %s)", zr,
                              l->z.msg != NULL ? l->z.msg : "no message");
    l->ready = true;
    if (l->coding == TP__CODING_GZIP) {
        memset(&l->head, 0, sizeof l->head); /* no extra, name or comment kept */
        inflateGetHeader(&l->z, &l->head);
    }
    return TP_OK;
}

/* layer_init: everything a layer needs before its first byte, except deflate's zlib
 * stream, which waits for the first two bytes (deflate_start). */
static tp_err layer_init(tp__decoder *d, layer *l)
{
    l->buf = tp__malloc(LAYER_BUF);
    if (l->buf == NULL)
        return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory for the %s decoder",
                              k_names[l->coding]);
    switch (l->coding) {
    case TP__CODING_GZIP:
        return zlib_init(d, l, 16 + MAX_WBITS);
    case TP__CODING_BR:
        l->br = BrotliDecoderCreateInstance(br_alloc, br_free, NULL);
        if (l->br == NULL)
            return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory for the br decoder");
        l->ready = true;
        return TP_OK;
    case TP__CODING_ZSTD: {
        /* zstd's own allocator: custom allocators are only in its experimental API. */
        l->zs = ZSTD_createDStream();
        if (l->zs == NULL)
            return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory for the zstd decoder");
        size_t r = ZSTD_DCtx_setParameter(l->zs, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
        if (ZSTD_isError(r))
            return tp_errinfo_set(&d->fail, TP_ESTATE, 0, "zstd refused the window limit: %s",
                                  ZSTD_getErrorName(r));
        l->ready = true;
        return TP_OK;
    }
    case TP__CODING_DEFLATE:
    case TP__CODING_IDENTITY:
        break;
    }
    return TP_OK;
}

/* zlib_header: cmf, flg start an RFC 1950 stream: method 8 (deflate), a window of at
 * most 32 KiB, and the check bits. */
static bool zlib_header(unsigned char cmf, unsigned char flg)
{
    return (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
}

/* ---- one codec call per step ------------------------------------------------------
 * A step hands the codec what input there is and the layer's empty buffer, and reports
 * how much it consumed (*used), produced (*made), and whether output may be pending
 * (*more: the buffer filled up). The caller hands the output on before the next step. */

static tp_err trailing(tp__decoder *d, const layer *l)
{
    return tp_errinfo_set(&d->fail, TP_EPROTO, 0, "trailing garbage after the end of the %s stream",
                          k_names[l->coding]);
}

static tp_err zlib_step(tp__decoder *d, layer *l, const unsigned char *in, size_t n, size_t *used,
                        size_t *made, bool *more)
{
    const char *name = k_names[l->coding];
    if (l->ended) {
        if (l->coding != TP__CODING_GZIP)
            return trailing(d, l);
        l->ended = false; /* a new gzip member starts (inflateReset ran at the last end) */
    }
    uInt avail = n > UINT_MAX ? UINT_MAX : (uInt)n;
    l->z.next_in = in;
    l->z.avail_in = avail;
    l->z.next_out = l->buf;
    l->z.avail_out = (uInt)LAYER_BUF;
    int zr = inflate(&l->z, Z_NO_FLUSH);
    *used = avail - l->z.avail_in;
    *made = LAYER_BUF - l->z.avail_out;
    *more = l->z.avail_out == 0;
    switch (zr) {
    case Z_OK:
    case Z_BUF_ERROR: /* no progress possible without more input: not an error */
        return TP_OK;
    case Z_STREAM_END: /* checksum verified, all output produced */
        l->ended = true;
        l->units++;
        *more = false;
        if (l->coding == TP__CODING_GZIP) {
            /* Ready for another member; the window stays allocated. */
            inflateReset(&l->z);
            memset(&l->head, 0, sizeof l->head);
            inflateGetHeader(&l->z, &l->head);
        }
        return TP_OK;
    case Z_NEED_DICT:
        return tp_errinfo_set(&d->fail, TP_EPROTO, 0,
                              "deflate stream needs a preset dictionary (not supported)");
    case Z_MEM_ERROR:
        return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory decoding %s", name);
    case Z_DATA_ERROR:
        /* After a member, bytes that do not make a member header are not a new member
         * (zlib sets head.done to -1 on a bad magic, leaves it 0 within the header). */
        if (l->coding == TP__CODING_GZIP && l->units > 0 && l->head.done != 1)
            return trailing(d, l);
        return tp_errinfo_set(&d->fail, TP_EPROTO, 0, "corrupt %s stream: %s", name,
                              l->z.msg != NULL ? l->z.msg : "data error");
    default:
        return tp_errinfo_set(&d->fail, TP_EPROTO, 0, "%s: inflate failed (%d)", name, zr);
    }
}

static tp_err br_step(tp__decoder *d, layer *l, const unsigned char *in, size_t n, size_t *used,
                      size_t *made, bool *more)
{
    if (l->ended)
        return trailing(d, l);
    size_t avail_in = n, avail_out = LAYER_BUF;
    const uint8_t *next_in = in;
    uint8_t *next_out = l->buf;
    BrotliDecoderResult r =
        BrotliDecoderDecompressStream(l->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
    *used = n - avail_in;
    *made = LAYER_BUF - avail_out;
    *more = r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT;
    switch (r) {
    case BROTLI_DECODER_RESULT_SUCCESS:
        l->ended = true;
        l->units++;
        return avail_in > 0 ? trailing(d, l) : TP_OK;
    case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
    case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
        return TP_OK;
    case BROTLI_DECODER_RESULT_ERROR:
        break;
    }
    BrotliDecoderErrorCode c = BrotliDecoderGetErrorCode(l->br);
    if (c <= BROTLI_DECODER_ERROR_ALLOC_CONTEXT_MODES &&
        c >= BROTLI_DECODER_ERROR_ALLOC_BLOCK_TYPE_TREES)
        return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory decoding br");
    const char *what = BrotliDecoderErrorString(c);
    if (what[0] == '_')
        what++; /* "_ERROR_FORMAT_PADDING_1" */
    return tp_errinfo_set(&d->fail, TP_EPROTO, 0, "corrupt br stream: %s", what);
}

static tp_err zstd_step(tp__decoder *d, layer *l, const unsigned char *in, size_t n, size_t *used,
                        size_t *made, bool *more)
{
    ZSTD_inBuffer ib = {in, n, 0};
    ZSTD_outBuffer ob = {l->buf, LAYER_BUF, 0};
    size_t r = ZSTD_decompressStream(l->zs, &ob, &ib);
    *used = ib.pos;
    *made = ob.pos;
    *more = ob.pos == ob.size;
    if (ZSTD_isError(r)) {
        switch (ZSTD_getErrorCode(r)) {
        case ZSTD_error_memory_allocation:
            return tp_errinfo_set(&d->fail, TP_ENOMEM, 0, "out of memory decoding zstd");
        case ZSTD_error_frameParameter_windowTooLarge:
            return tp_errinfo_set(&d->fail, TP_EPROTO, 0,
                                  "zstd frame needs a window above the %u MiB limit",
                                  1u << (ZSTD_WINDOW_LOG_MAX - 20));
        case ZSTD_error_prefix_unknown:
            /* zstd stops at the end of each frame, so this is the start of the next. */
            if (l->units > 0)
                return trailing(d, l);
            break;
        default:
            break;
        }
        return tp_errinfo_set(&d->fail, TP_EPROTO, 0, "corrupt zstd stream: %s",
                              ZSTD_getErrorName(r));
    }
    if (r == 0) { /* a frame ended and is fully flushed */
        l->ended = true;
        l->units++;
        *more = false;
    } else if (*used > 0) {
        l->ended = false;
    }
    return TP_OK;
}

static tp_err step(tp__decoder *d, layer *l, const unsigned char *in, size_t n, size_t *used,
                   size_t *made, bool *more)
{
    switch (l->coding) {
    case TP__CODING_GZIP:
    case TP__CODING_DEFLATE:
        return zlib_step(d, l, in, n, used, made, more);
    case TP__CODING_BR:
        return br_step(d, l, in, n, used, made, more);
    case TP__CODING_ZSTD:
        return zstd_step(d, l, in, n, used, made, more);
    case TP__CODING_IDENTITY:
        break;
    }
    return tp_errinfo_set(&d->fail, TP_ESTATE, 0, "no decoder for coding %d", (int)l->coding);
}

/* ---- the chain ------------------------------------------------------------------- */

/* over_ratio: total > encoded * ratio, without overflow. */
static bool over_ratio(uint64_t total, uint64_t encoded, unsigned ratio)
{
    if (encoded > UINT64_MAX / ratio)
        return false;
    return total > encoded * ratio;
}

/* forward: hands the made bytes in layer i's buffer on: to layer i + 1, or to the
 * caller when i is the last. The bounds are checked first, so a piece that would pass
 * one is never delivered. */
static tp_err forward(tp__decoder *d, int i, size_t made)
{
    layer *l = &d->layers[i];
    uint64_t total = l->produced + made;
    bool last = i + 1 == d->n;
    if (d->max_ratio != 0 && total > RATIO_FLOOR && over_ratio(total, d->encoded, d->max_ratio)) {
        char what[32];
        if (last)
            snprintf(what, sizeof what, "decoded body");
        else
            snprintf(what, sizeof what, "output of the %s layer", k_names[l->coding]);
        return tp_errinfo_set(&d->fail, TP_ETOOBIG, 0,
                              "%s exceeds max_decoded_ratio %u: %llu bytes from %llu encoded bytes",
                              what, d->max_ratio, (unsigned long long)total,
                              (unsigned long long)d->encoded);
    }
    if (!last) {
        l->produced = total;
        return pump(d, i + 1, l->buf, made);
    }
    if (d->max_out != 0 && total > d->max_out)
        return tp_errinfo_set(&d->fail, TP_ETOOBIG, 0,
                              "decoded body exceeds max_out %llu bytes (%llu delivered, %zu more "
                              "decoded)",
                              (unsigned long long)d->max_out, (unsigned long long)d->decoded, made);
    /* Counted before the call: a piece the reader stops at was still delivered. */
    l->produced = total;
    d->decoded = total;
    if (d->out(d->ud, (const char *)l->buf, made) != 0)
        return tp_errinfo_set(&d->fail, TP_ECANCELED, 0,
                              "the reader of the decoded body stopped it");
    return TP_OK;
}

/* deflate_start: decides between the zlib format and raw deflate from the layer's
 * first two bytes and starts zlib accordingly; a lone first byte is kept until the
 * second arrives. Advances *in / *n over the bytes it keeps. */
static tp_err deflate_start(tp__decoder *d, int i, const unsigned char **in, size_t *n)
{
    layer *l = &d->layers[i];
    if (*n == 0)
        return TP_OK;
    if (!l->have_first && *n == 1) {
        l->first = (*in)[0];
        l->have_first = true;
        l->in_total++;
        if (i == 0)
            d->encoded++;
        (*in)++;
        (*n)--;
        return TP_OK;
    }
    unsigned char b0 = l->have_first ? l->first : (*in)[0];
    unsigned char b1 = l->have_first ? (*in)[0] : (*in)[1];
    tp_err rc = zlib_init(d, l, zlib_header(b0, b1) ? MAX_WBITS : -MAX_WBITS);
    if (rc != TP_OK || !l->have_first)
        return rc;
    /* Hand zlib the byte kept back (already counted). One byte never decodes to a
     * full buffer, but hand on whatever it gives. */
    size_t used = 0, made = 0;
    bool more = false;
    rc = zlib_step(d, l, &l->first, 1, &used, &made, &more);
    if (made > 0) {
        tp_err frc = forward(d, i, made);
        if (frc != TP_OK)
            return frc;
    }
    return rc;
}

/* pump: runs layer i over n input bytes until all are consumed and all output has been
 * handed on. Recursion depth is bounded by the number of layers. */
static tp_err pump(tp__decoder *d, int i, const unsigned char *in, size_t n)
{
    layer *l = &d->layers[i];
    if (l->coding == TP__CODING_DEFLATE && !l->ready) { /* before its first two bytes */
        tp_err rc = deflate_start(d, i, &in, &n);
        if (rc != TP_OK || !l->ready)
            return rc;
    }
    bool more = false;
    int stalls = 0;
    while (n > 0 || more) {
        size_t used = 0, made = 0;
        tp_err rc = step(d, l, in, n, &used, &made, &more);
        l->in_total += used;
        if (i == 0)
            d->encoded += used;
        in += used;
        n -= used;
        /* Output decoded before an error is still handed on: it was valid. */
        if (made > 0) {
            tp_err frc = forward(d, i, made);
            if (frc != TP_OK)
                return frc;
        }
        if (rc != TP_OK)
            return rc;
        if (used == 0 && made == 0) {
            if (++stalls > STALL_MAX)
                return tp_errinfo_set(&d->fail, TP_EPROTO, 0, "the %s decoder makes no progress",
                                      k_names[l->coding]);
        } else {
            stalls = 0;
        }
    }
    return TP_OK;
}

/* ---- the API --------------------------------------------------------------------- */

tp_err tp__decoder_create(const char *content_encoding, size_t len, uint64_t max_out,
                          unsigned max_ratio, tp__decoder **out, tp_errinfo *err)
{
    *out = NULL;
    tp__coding list[TP__DECODE_MAX_LAYERS];
    int n = 0;
    if (content_encoding == NULL)
        len = 0;
    tp_err rc = parse_codings(content_encoding, len, list, &n, err);
    if (rc != TP_OK || n == 0)
        return rc;
    tp__decoder *d = tp__calloc(1, sizeof *d);
    if (d == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "out of memory for a content decoder");
    d->n = n;
    d->max_out = max_out;
    d->max_ratio = max_ratio;
    size_t at = 0;
    for (int k = 0; k < n; k++) {
        int w = snprintf(d->name + at, sizeof d->name - at, "%s%s", k > 0 ? ", " : "",
                         k_names[list[k]]);
        if (w > 0)
            at += TP__MIN((size_t)w, sizeof d->name - 1 - at);
    }
    for (int k = 0; k < n; k++) {
        d->layers[k].coding = list[n - 1 - k];
        rc = layer_init(d, &d->layers[k]);
        if (rc != TP_OK) {
            if (err != NULL)
                *err = d->fail;
            tp__decoder_destroy(d);
            return rc;
        }
    }
    *out = d;
    return TP_OK;
}

/* replay: the sticky error again, with its message. */
static tp_err replay(const tp__decoder *d, tp_errinfo *err)
{
    if (err != NULL)
        *err = d->fail;
    return d->sticky;
}

tp_err tp__decoder_feed(tp__decoder *d, const void *in, size_t n, tp__decode_out_fn out, void *ud,
                        tp_errinfo *err)
{
    if (d->sticky != TP_OK)
        return replay(d, err);
    if (d->finished)
        return tp_errinfo_set(err, TP_ESTATE, 0, "%s body fed after its end", d->name);
    d->out = out;
    d->ud = ud;
    tp_err rc = pump(d, 0, in, n);
    d->out = NULL;
    d->ud = NULL;
    if (rc != TP_OK) {
        d->sticky = rc;
        return replay(d, err);
    }
    return TP_OK;
}

tp_err tp__decoder_finish(tp__decoder *d, tp__decode_out_fn out, void *ud, tp_errinfo *err)
{
    (void)out; /* every layer hands its output on at once: nothing is held back */
    (void)ud;
    if (d->sticky != TP_OK)
        return replay(d, err);
    for (int i = 0; i < d->n; i++) {
        const layer *l = &d->layers[i];
        if (l->ended || l->in_total == 0)
            continue; /* a complete stream, or an empty body */
        const char *name = k_names[l->coding];
        if (l->coding == TP__CODING_GZIP && l->units > 0 && l->head.done != 1)
            tp_errinfo_set(&d->fail, TP_EPROTO, 0,
                           "trailing garbage after the end of the gzip stream (not a whole "
                           "member header)");
        else if (l->units > 0)
            tp_errinfo_set(&d->fail, TP_EPROTO, 0, "truncated %s stream (%s %u incomplete)", name,
                           l->coding == TP__CODING_ZSTD ? "frame" : "member", l->units + 1);
        else
            tp_errinfo_set(&d->fail, TP_EPROTO, 0, "truncated %s stream", name);
        d->sticky = TP_EPROTO;
        return replay(d, err);
    }
    d->finished = true;
    return TP_OK;
}

uint64_t tp__decoder_decoded(const tp__decoder *d)
{
    return d->decoded;
}

uint64_t tp__decoder_encoded(const tp__decoder *d)
{
    return d->encoded;
}

const char *tp__decoder_name(const tp__decoder *d)
{
    return d->name;
}

void tp__decoder_destroy(tp__decoder *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->n; i++) {
        layer *l = &d->layers[i];
        if (l->ready && (l->coding == TP__CODING_GZIP || l->coding == TP__CODING_DEFLATE))
            inflateEnd(&l->z);
        if (l->br != NULL)
            BrotliDecoderDestroyInstance(l->br);
        if (l->zs != NULL)
            ZSTD_freeDStream(l->zs);
        tp__free(l->buf);
    }
    tp__free(d);
}
