/* smimekit directory plugin template in plain C: start your plugin from this file.
 *
 * It is a complete, working directory of kind "template-c" that keeps its recipients in memory
 * (per open handle, lost at close): every function of smk_directory_v1, the buffer rules, the
 * status codes and the list encoding are done, and it reads its settings as key/value pairs
 * (dir_open_pairs, ABI 1.1), so no TOML parser is needed; replace the parts marked TODO with
 * calls to your directory. Check your plugin with
 *
 *   smimekit plugins check ./libsmimekit_template_c.so [--config test.toml]
 *
 * which must print PASSED. Contract: docs/plugin-abi.md; header: smimekit_plugin.h.
 * Build (no Makefile needed; `cargo xtask build-samples` does the same):
 *
 *   cc -O2 -Wall -shared -fPIC -I crates/plugin-abi/include template_c.c -o libsmimekit_template_c.so
 *
 * Threading: flags = 0, so smimekit calls this plugin from one worker thread, one call at a
 * time: no locking is needed. Set SMK_FLAG_THREAD_SAFE only once every function may run
 * concurrently on the same handle.
 */
#include <stdlib.h>
#include <string.h>

#include "smimekit_plugin.h"

/* ---- buffers: every output is a fresh malloc, released by the host with free_buf ---- */

static void free_buf(uint8_t *ptr, size_t len) {
  (void)len;
  free(ptr);
}

/* Hands `len` bytes to the host in `out` (a copy: never a pointer the plugin keeps). */
static smk_status put(smk_buf *out, const void *data, size_t len, smk_status status) {
  if (out == NULL || len == 0) return status; /* empty output: ptr stays NULL */
  out->ptr = malloc(len);
  if (out->ptr == NULL) return SMK_FAILED;
  memcpy(out->ptr, data, len);
  out->len = len;
  return status;
}

/* A failure with a message for the person (UTF-8; say what to do). */
static smk_status fail(smk_buf *out, smk_status status, const char *msg) {
  return put(out, msg, strlen(msg), status);
}

/* A growing byte string, for building lists. */
typedef struct {
  uint8_t *p;
  size_t len, cap;
  int oom;
} bytes;

static void append(bytes *b, const void *data, size_t len) {
  if (b->oom) return;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + len) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  if (len) memcpy(b->p + b->len, data, len);
  b->len += len;
}

/* One list item: a 4-byte little-endian length, then the bytes. */
static void item(bytes *b, const void *data, size_t len) {
  uint8_t l[4] = { (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24) };
  append(b, l, 4);
  append(b, data, len);
}

/* Moves a built byte string into `out` (the host frees it with free_buf). */
static smk_status give(bytes *b, smk_buf *out) {
  if (b->oom) { free(b->p); return fail(out, SMK_FAILED, "template-c: out of memory"); }
  out->ptr = b->len ? b->p : NULL;
  out->len = b->len;
  if (!b->len) free(b->p);
  return SMK_OK;
}

/* ---- the directory: TODO replace with your backend ---- */

typedef struct {
  uint8_t *der;
  size_t len;
} cert;

typedef struct {
  char *address; /* stored lower-case (ASCII): addresses compare case-insensitively */
  uint32_t kind; /* SMK_RECIPIENT_MAILBOX or SMK_RECIPIENT_CONTACT */
  cert *certs;
  size_t n;
} recipient;

struct smk_dir {
  char *name;
  int readonly;
  recipient *r;
  size_t n;
};

static char *lower_copy(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  for (size_t i = 0; i < n; i++) s[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : (char)p[i];
  s[n] = 0;
  return s;
}

static recipient *find(smk_dir *d, const uint8_t *address, size_t len) {
  char *a = lower_copy(address, len);
  if (a == NULL) return NULL;
  recipient *found = NULL;
  for (size_t i = 0; i < d->n && !found; i++)
    if (strcmp(d->r[i].address, a) == 0) found = &d->r[i];
  free(a);
  return found;
}

/* A DER SEQUENCE spanning exactly `len` bytes: the least a certificate is. TODO: parse it
 * properly if your directory needs the subject or the addresses. */
static int looks_like_der(const uint8_t *p, size_t len) {
  if (len < 2 || p[0] != 0x30) return 0;
  size_t l = p[1], head = 2;
  if (l & 0x80) {
    size_t n = l & 0x7f;
    if (n == 0 || n > 4 || len < 2 + n) return 0;
    l = 0;
    for (size_t i = 0; i < n; i++) l = l << 8 | p[2 + i];
    head += n;
  }
  return head + l == len;
}

/* The list of a recipient's certificates (empty list when none). */
static smk_status cert_list(const recipient *r, smk_buf *out) {
  bytes b = { 0 };
  for (size_t i = 0; r && i < r->n; i++) item(&b, r->certs[i].der, r->certs[i].len);
  return give(&b, out);
}

/* Reads one list item at `*p` (4-byte little-endian length, then the bytes); 0 at the end or
 * when the list is malformed. */
static int next_item(const uint8_t **p, const uint8_t *end, const uint8_t **item, size_t *len) {
  if (end - *p < 4) return 0;
  size_t l = (size_t)(*p)[0] | (size_t)(*p)[1] << 8 | (size_t)(*p)[2] << 16 | (size_t)(*p)[3] << 24;
  if ((size_t)(end - *p - 4) < l) return 0;
  *item = *p + 4;
  *len = l;
  *p += 4 + l;
  return 1;
}

/* The value of `key` in the configuration pairs (a list alternating key and value), as a
 * NUL-terminated copy to free, or NULL when the key is absent. */
static char *setting(const uint8_t *pairs, size_t pairs_len, const char *key) {
  const uint8_t *p = pairs, *end = pairs + pairs_len, *k, *v;
  size_t kl, vl;
  if (pairs == NULL) return NULL;
  while (next_item(&p, end, &k, &kl) && next_item(&p, end, &v, &vl)) {
    if (kl == strlen(key) && memcmp(k, key, kl) == 0) {
      char *s = malloc(vl + 1);
      if (s == NULL) return NULL;
      memcpy(s, v, vl);
      s[vl] = 0;
      return s;
    }
  }
  return NULL;
}

/* ---- the table's functions ---- */

/* The host calls this (ABI 1.1) instead of dir_open: the [directory.NAME] table as key/value
 * pairs, so no TOML parser is needed (docs/plugin-abi.md, "Configuration"). */
static smk_status dir_open_pairs(const uint8_t *name, size_t name_len, const uint8_t *pairs, size_t pairs_len,
                                 smk_dir **out, smk_buf *err) {
  if (out == NULL) return SMK_INVALID_ARGUMENT;
  /* TODO: read your settings, connect, and answer SMK_CONFIG with a message naming the setting
   * when one is wrong, e.g. fail(err, SMK_CONFIG, "[directory.x] needs url = \"…\""). */
  /* An example setting: `readonly = true` refuses writes. */
  char *ro = setting(pairs, pairs_len, "readonly");
  int readonly = ro != NULL && strcmp(ro, "true") == 0;
  int bad = ro != NULL && !readonly && strcmp(ro, "false") != 0;
  free(ro);
  if (bad) return fail(err, SMK_CONFIG, "template-c: readonly must be true or false");
  smk_dir *d = calloc(1, sizeof *d);
  if (d == NULL) return fail(err, SMK_FAILED, "template-c: out of memory");
  d->name = lower_copy(name, name_len);
  d->readonly = readonly;
  *out = d;
  return SMK_OK;
}

/* Required, for hosts before ABI 1.1, which hand the table as TOML text only. */
static smk_status dir_open(const uint8_t *name, size_t name_len, const uint8_t *config, size_t config_len,
                           smk_dir **out, smk_buf *err) {
  (void)name; (void)name_len; (void)config; (void)config_len; (void)out;
  return fail(err, SMK_UNSUPPORTED, "template-c needs smimekit with plugin ABI 1.1 (dir_open_pairs)");
}

static void dir_close(smk_dir *d) {
  if (d == NULL) return;
  /* TODO: disconnect. Finish all work here: the host waits for close, then the process ends. */
  for (size_t i = 0; i < d->n; i++) {
    for (size_t j = 0; j < d->r[i].n; j++) free(d->r[i].certs[j].der);
    free(d->r[i].certs);
    free(d->r[i].address);
  }
  free(d->r);
  free(d->name);
  free(d);
}

static smk_status dir_lookup(smk_dir *d, const uint8_t *address, size_t len, smk_buf *out) {
  if (d == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  recipient *r = find(d, address, len);
  /* An address nobody has: SMK_NOT_FOUND (the host searches the next directory). A recipient
   * without certificates is SMK_OK with an empty list. */
  if (r == NULL) return fail(out, SMK_NOT_FOUND, "template-c: no such recipient");
  return cert_list(r, out);
}

/* One recipient (ABI 1.1): the triple (address, kind, list of DER), or SMK_NOT_FOUND. */
static smk_status dir_recipient(smk_dir *d, const uint8_t *address, size_t len, smk_buf *out) {
  if (d == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  recipient *r = find(d, address, len);
  if (r == NULL) return fail(out, SMK_NOT_FOUND, "template-c: no such recipient");
  bytes one = { 0 }, certs = { 0 };
  uint8_t kind = (uint8_t)r->kind;
  for (size_t j = 0; j < r->n; j++) item(&certs, r->certs[j].der, r->certs[j].len);
  item(&one, r->address, strlen(r->address));
  item(&one, &kind, 1);
  item(&one, certs.p, certs.len);
  one.oom |= certs.oom;
  free(certs.p);
  return give(&one, out);
}

static smk_status dir_recipients(smk_dir *d, smk_buf *out) {
  if (d == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  bytes all = { 0 };
  for (size_t i = 0; i < d->n; i++) {
    recipient *r = &d->r[i];
    bytes one = { 0 }, certs = { 0 };
    uint8_t kind = (uint8_t)r->kind;
    for (size_t j = 0; j < r->n; j++) item(&certs, r->certs[j].der, r->certs[j].len);
    item(&one, r->address, strlen(r->address));
    item(&one, &kind, 1);
    item(&one, certs.p, certs.len);
    item(&all, one.p, one.len);
    all.oom |= one.oom | certs.oom;
    free(one.p);
    free(certs.p);
  }
  return give(&all, out);
}

static smk_status dir_publish(smk_dir *d, const uint8_t *address, size_t address_len, uint32_t kind,
                              const uint8_t *der, size_t der_len, uint32_t mode, smk_buf *out) {
  if (d == NULL || out == NULL || address_len == 0) return SMK_INVALID_ARGUMENT;
  if (d->readonly) return fail(out, SMK_REJECTED, "template-c: this directory is read-only (readonly = true)");
  if (mode != SMK_PUBLISH_MERGE && mode != SMK_PUBLISH_REPLACE) return fail(out, SMK_INVALID_ARGUMENT, "template-c: unknown publish mode");
  if (!looks_like_der(der, der_len)) return fail(out, SMK_MALFORMED, "template-c: the certificate is not DER");
  recipient *r = find(d, address, address_len);
  if (r == NULL) {
    recipient *more = realloc(d->r, (d->n + 1) * sizeof *more);
    if (more == NULL) return fail(out, SMK_FAILED, "template-c: out of memory");
    d->r = more;
    r = &d->r[d->n];
    memset(r, 0, sizeof *r);
    r->address = lower_copy(address, address_len);
    if (r->address == NULL) return fail(out, SMK_FAILED, "template-c: out of memory");
    r->kind = kind == SMK_RECIPIENT_CONTACT ? SMK_RECIPIENT_CONTACT : SMK_RECIPIENT_MAILBOX;
    d->n++;
  }
  if (mode == SMK_PUBLISH_REPLACE) {
    /* Keep only the new certificate. */
    for (size_t j = 0; j < r->n; j++) free(r->certs[j].der);
    r->n = 0;
  }
  for (size_t j = 0; j < r->n; j++)
    if (r->certs[j].len == der_len && memcmp(r->certs[j].der, der, der_len) == 0)
      return cert_list(r, out); /* merge: already there, kept once */
  cert *more = realloc(r->certs, (r->n + 1) * sizeof *more);
  if (more == NULL) return fail(out, SMK_FAILED, "template-c: out of memory");
  r->certs = more;
  r->certs[r->n].der = malloc(der_len);
  if (r->certs[r->n].der == NULL) return fail(out, SMK_FAILED, "template-c: out of memory");
  memcpy(r->certs[r->n].der, der, der_len);
  r->certs[r->n].len = der_len;
  r->n++;
  /* `out` is what the directory holds afterwards, read back. */
  return cert_list(r, out);
}

static smk_status dir_unpublish(smk_dir *d, const uint8_t *address, size_t address_len, const uint8_t *der,
                                size_t der_len, smk_buf *out) {
  if (d == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  if (d->readonly) return fail(out, SMK_REJECTED, "template-c: this directory is read-only (readonly = true)");
  recipient *r = find(d, address, address_len);
  if (r == NULL) return fail(out, SMK_NOT_FOUND, "template-c: no such recipient");
  for (size_t j = 0; j < r->n; j++) {
    if (r->certs[j].len == der_len && memcmp(r->certs[j].der, der, der_len) == 0) {
      free(r->certs[j].der);
      r->certs[j] = r->certs[r->n - 1];
      r->n--;
      break;
    }
  }
  return cert_list(r, out);
}

/* ---- the table and the entry point ---- */

static const smk_directory_v1 TABLE = {
  .header = { SMK_ABI_MAJOR, SMK_ABI_MINOR, sizeof(smk_directory_v1), 0 /* not thread-safe */ },
  .name = "template-c",  /* TODO: your kind: [a-z0-9-], not a built-in's */
  .version = "0.1.0",    /* MAJOR.MINOR.PATCH */
  .description = "Directory plugin template in C (in memory)",
  .free_buf = free_buf,
  .dir_open = dir_open,
  .dir_close = dir_close,
  .dir_lookup = dir_lookup,
  .dir_recipients = dir_recipients, /* optional: NULL if you cannot list */
  .dir_publish = dir_publish,       /* optional: NULL for a read-only directory */
  .dir_unpublish = dir_unpublish,   /* optional */
  .dir_recipient = dir_recipient,   /* optional (1.1): one recipient without listing */
  .dir_open_pairs = dir_open_pairs, /* optional (1.1): used instead of dir_open */
};

__attribute__((visibility("default")))
const void *smimekit_plugin_entry(const char *interface_name, uint32_t abi_major) {
  if (interface_name == NULL || abi_major != SMK_ABI_MAJOR) return NULL;
  if (strcmp(interface_name, SMK_DIRECTORY_INTERFACE) == 0) return &TABLE;
  return NULL;
}
