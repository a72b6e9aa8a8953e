/* Sample vendor plugin in plain C: a key store of kind "vendor-c" backed by a PEM key and a PEM
 * certificate, signing and decrypting through OpenSSL's C API.
 *
 * KEYREF: vendor-c:/path/key.pem?cert=/path/cert.pem  (or --cert FILE instead of ?cert=).
 * An encrypted PEM key reports SMK_NEEDS_UNLOCK until store_unlock gets its password.
 *
 * It exists to show the ABI from C (docs/plugin-abi.md): it is not thread-safe (flags = 0),
 * so the host calls it from one worker thread; ECDH is left NULL ("not supported"). Build:
 *   cc -shared -fPIC -I crates/plugin-abi/include vendor_c.c -lcrypto -o libsmimekit_vendor_c.so
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "smimekit_plugin.h"

struct smk_store {
  char *key_path;
  EVP_PKEY *pkey; /* NULL while locked */
  unsigned char *cert_der;
  size_t cert_len;
};

struct smk_key {
  struct smk_store *store;
};

static void free_buf(uint8_t *ptr, size_t len) {
  (void)len;
  free(ptr);
}

/* Copies bytes into a malloc'd buffer owned by the host until free_buf. */
static smk_status put(smk_buf *out, const void *data, size_t len, smk_status status) {
  if (out == NULL || len == 0) return status;
  out->ptr = malloc(len);
  if (out->ptr == NULL) return SMK_FAILED;
  memcpy(out->ptr, data, len);
  out->len = len;
  return status;
}

static smk_status fail(smk_buf *out, smk_status status, const char *msg) {
  return put(out, msg, strlen(msg), status);
}

static char *dup_n(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

static const char PREFIX[] = "vendor-c:";

static uint32_t accepts(const uint8_t *ref, size_t len) {
  return len > strlen(PREFIX) && memcmp(ref, PREFIX, strlen(PREFIX)) == 0;
}

/* Never prompts: an encrypted key without a password fails to load. */
static int no_prompt(char *buf, int size, int rwflag, void *u) {
  (void)buf; (void)size; (void)rwflag; (void)u;
  return -1;
}

static EVP_PKEY *read_key(const char *path, const char *password) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  EVP_PKEY *k = password ? PEM_read_PrivateKey(f, NULL, NULL, (void *)password)
                         : PEM_read_PrivateKey(f, NULL, no_prompt, NULL);
  fclose(f);
  return k;
}

static int file_has(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[256];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

static void store_close(smk_store *s) {
  if (s == NULL) return;
  EVP_PKEY_free(s->pkey);
  free(s->cert_der);
  free(s->key_path);
  free(s);
}

static smk_status store_open(const uint8_t *ref, size_t ref_len, const uint8_t *cert, size_t cert_len,
                             smk_store **out, smk_buf *err) {
  if (out == NULL || !accepts(ref, ref_len)) return fail(err, SMK_INVALID_ARGUMENT, "not a vendor-c: reference");
  char *r = dup_n(ref + strlen(PREFIX), ref_len - strlen(PREFIX));
  if (r == NULL) return SMK_FAILED;
  char *q = strchr(r, '?');
  char *cert_path = NULL;
  if (q != NULL) {
    *q = 0;
    if (strncmp(q + 1, "cert=", 5) == 0) cert_path = strdup(q + 6);
  }
  if (cert_path == NULL && cert_len > 0) cert_path = dup_n(cert, cert_len);
  if (cert_path == NULL) {
    free(r);
    return fail(err, SMK_MALFORMED, "vendor-c: needs ?cert=FILE (or --cert FILE)");
  }
  FILE *cf = fopen(cert_path, "r");
  free(cert_path);
  if (cf == NULL) {
    free(r);
    return fail(err, SMK_NOT_FOUND, "vendor-c: cannot open the certificate file");
  }
  X509 *x = PEM_read_X509(cf, NULL, no_prompt, NULL);
  fclose(cf);
  if (x == NULL) {
    free(r);
    return fail(err, SMK_MALFORMED, "vendor-c: the certificate file holds no PEM certificate");
  }
  smk_store *s = calloc(1, sizeof *s);
  if (s == NULL) { X509_free(x); free(r); return SMK_FAILED; }
  s->key_path = r;
  unsigned char *der = NULL;
  int n = i2d_X509(x, &der);
  X509_free(x);
  if (n <= 0) { store_close(s); return fail(err, SMK_FAILED, "vendor-c: cannot encode the certificate"); }
  s->cert_der = malloc((size_t)n);
  memcpy(s->cert_der, der, (size_t)n);
  s->cert_len = (size_t)n;
  OPENSSL_free(der);
  FILE *kf = fopen(r, "r");
  if (kf == NULL) { store_close(s); return fail(err, SMK_NOT_FOUND, "vendor-c: cannot open the key file"); }
  fclose(kf);
  s->pkey = read_key(r, NULL);
  if (s->pkey == NULL && !file_has(r, "ENCRYPTED")) {
    store_close(s);
    return fail(err, SMK_MALFORMED, "vendor-c: the key file holds no PEM private key");
  }
  *out = s;
  return SMK_OK;
}

static smk_status store_protection(smk_store *s, smk_buf *out) {
  if (s == NULL) return SMK_INVALID_ARGUMENT;
  if (s->pkey == NULL) return fail(out, SMK_NEEDS_UNLOCK, "password of the encrypted PEM key");
  return SMK_OK;
}

static smk_status store_unlock(smk_store *s, const uint8_t *secret, size_t len, smk_buf *err) {
  if (s == NULL) return SMK_INVALID_ARGUMENT;
  if (s->pkey != NULL) return SMK_OK;
  char *pw = dup_n(secret, len);
  if (pw == NULL) return SMK_FAILED;
  s->pkey = read_key(s->key_path, pw);
  OPENSSL_cleanse(pw, len);
  free(pw);
  return s->pkey ? SMK_OK : fail(err, SMK_BAD_SECRET, "wrong password for the PEM key");
}

static smk_status store_list(smk_store *s, smk_buf *out) {
  if (s == NULL) return SMK_INVALID_ARGUMENT;
  /* One key: the list (selector "#0", empty label, certificate). */
  size_t total = 4 + 2 + 4 + 0 + 4 + s->cert_len;
  uint8_t *b = malloc(total), *p = b;
  if (b == NULL) return SMK_FAILED;
  uint32_t l;
  l = 2; memcpy(p, &l, 4); p += 4; memcpy(p, "#0", 2); p += 2; /* little-endian hosts only */
  l = 0; memcpy(p, &l, 4); p += 4;
  l = (uint32_t)s->cert_len; memcpy(p, &l, 4); p += 4; memcpy(p, s->cert_der, s->cert_len);
  out->ptr = b;
  out->len = total;
  return SMK_OK;
}

static smk_status key_open(smk_store *s, const uint8_t *sel, size_t sel_len, smk_key **out, smk_buf *err) {
  if (s == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  if (sel_len > 0 && !(sel_len == 2 && memcmp(sel, "#0", 2) == 0))
    return fail(err, SMK_NOT_FOUND, "vendor-c: the only key is #0");
  if (s->pkey == NULL) return fail(err, SMK_NEEDS_UNLOCK, "password of the encrypted PEM key");
  smk_key *k = calloc(1, sizeof *k);
  if (k == NULL) return SMK_FAILED;
  k->store = s;
  *out = k;
  return SMK_OK;
}

static void key_close(smk_key *k) { free(k); }

static smk_status key_certificate(smk_key *k, smk_buf *out) {
  if (k == NULL) return SMK_INVALID_ARGUMENT;
  return put(out, k->store->cert_der, k->store->cert_len, SMK_OK);
}

static smk_status key_kind(smk_key *k, uint32_t *kind, uint32_t *param) {
  if (k == NULL || kind == NULL || param == NULL) return SMK_INVALID_ARGUMENT;
  EVP_PKEY *p = k->store->pkey;
  *kind = SMK_KEY_OTHER;
  *param = 0;
  if (EVP_PKEY_base_id(p) == EVP_PKEY_RSA) {
    *kind = SMK_KEY_RSA;
    *param = (uint32_t)EVP_PKEY_bits(p);
  } else if (EVP_PKEY_base_id(p) == EVP_PKEY_EC) {
    *kind = SMK_KEY_EC;
    int bits = EVP_PKEY_bits(p);
    *param = bits == 256 ? SMK_CURVE_P256 : bits == 384 ? SMK_CURVE_P384 : bits == 521 ? SMK_CURVE_P521 : 0;
  }
  return SMK_OK;
}

static const EVP_MD *md_of(uint32_t d) {
  switch (d) {
    case SMK_DIGEST_SHA1: return EVP_sha1();
    case SMK_DIGEST_SHA224: return EVP_sha224();
    case SMK_DIGEST_SHA256: return EVP_sha256();
    case SMK_DIGEST_SHA384: return EVP_sha384();
    case SMK_DIGEST_SHA512: return EVP_sha512();
    default: return NULL;
  }
}

static smk_status key_sign_digest(smk_key *k, uint32_t scheme, const uint8_t *digest, size_t len, smk_buf *out) {
  if (k == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  uint32_t alg = scheme >> 8;
  const EVP_MD *md = md_of(scheme & 0xff);
  if (md == NULL || (alg != SMK_SIG_RSA_PKCS1 && alg != SMK_SIG_RSA_PSS && alg != SMK_SIG_ECDSA))
    return fail(out, SMK_UNSUPPORTED, "vendor-c: unsupported signature scheme");
  if ((size_t)EVP_MD_get_size(md) != len) return fail(out, SMK_INVALID_ARGUMENT, "digest length does not match the scheme");
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->store->pkey, NULL);
  size_t siglen = 0;
  smk_status st = SMK_FAILED;
  if (ctx && EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_CTX_set_signature_md(ctx, md) > 0) {
    int ok = 1;
    if (alg == SMK_SIG_RSA_PKCS1) ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
    if (alg == SMK_SIG_RSA_PSS)
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
    if (ok && EVP_PKEY_sign(ctx, NULL, &siglen, digest, len) > 0) {
      uint8_t *sig = malloc(siglen);
      if (sig && EVP_PKEY_sign(ctx, sig, &siglen, digest, len) > 0) {
        out->ptr = sig;
        out->len = siglen;
        st = SMK_OK;
      } else {
        free(sig);
      }
    }
  }
  EVP_PKEY_CTX_free(ctx);
  return st == SMK_OK ? st : fail(out, SMK_FAILED, "vendor-c: OpenSSL could not sign (wrong key type for the scheme?)");
}

static smk_status key_decrypt(smk_key *k, uint32_t padding, uint32_t oaep_hash, uint32_t oaep_mgf1,
                              const uint8_t *label, size_t label_len, const uint8_t *wrapped, size_t wrapped_len,
                              smk_buf *out) {
  if (k == NULL || out == NULL) return SMK_INVALID_ARGUMENT;
  if (EVP_PKEY_base_id(k->store->pkey) != EVP_PKEY_RSA) return fail(out, SMK_UNSUPPORTED, "vendor-c: not an RSA key");
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->store->pkey, NULL);
  smk_status st = SMK_FAILED;
  size_t n = 0;
  if (ctx && EVP_PKEY_decrypt_init(ctx) > 0) {
    int ok;
    if (padding == SMK_PADDING_PKCS1) {
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
    } else if (padding == SMK_PADDING_OAEP && md_of(oaep_hash) && md_of(oaep_mgf1)) {
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md_of(oaep_hash)) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md_of(oaep_mgf1)) > 0;
      if (ok && label_len > 0) {
        void *l = OPENSSL_memdup(label, label_len); /* OpenSSL takes ownership */
        ok = l && EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int)label_len) > 0;
      }
    } else {
      EVP_PKEY_CTX_free(ctx);
      return fail(out, SMK_UNSUPPORTED, "vendor-c: unsupported padding");
    }
    if (ok && EVP_PKEY_decrypt(ctx, NULL, &n, wrapped, wrapped_len) > 0) {
      uint8_t *pt = malloc(n);
      if (pt && EVP_PKEY_decrypt(ctx, pt, &n, wrapped, wrapped_len) > 0) {
        out->ptr = pt;
        out->len = n;
        st = SMK_OK;
      } else {
        free(pt);
      }
    }
  }
  EVP_PKEY_CTX_free(ctx);
  return st == SMK_OK ? st : fail(out, SMK_FAILED, "vendor-c: decryption failed (wrong key?)");
}

static const smk_keystore_v1 TABLE = {
  .header = { SMK_ABI_MAJOR, SMK_ABI_MINOR, sizeof(smk_keystore_v1), 0 },
  .name = "vendor-c",
  .version = "0.1.0",
  .description = "Sample vendor key store in C: PEM key + certificate via OpenSSL",
  .free_buf = free_buf,
  .accepts = accepts,
  .store_open = store_open,
  .store_close = store_close,
  .store_protection = store_protection,
  .store_unlock = store_unlock,
  .store_list = store_list,
  .key_open = key_open,
  .key_close = key_close,
  .key_certificate = key_certificate,
  .key_chain = NULL,
  .key_kind = key_kind,
  .key_sign_digest = key_sign_digest,
  .key_decrypt = key_decrypt,
  .key_ecdh = NULL, /* not supported */
};

__attribute__((visibility("default")))
const void *smimekit_plugin_entry(const char *interface_name, uint32_t abi_major) {
  if (interface_name == NULL || abi_major != SMK_ABI_MAJOR) return NULL;
  if (strcmp(interface_name, SMK_KEYSTORE_INTERFACE) == 0) return &TABLE;
  return NULL;
}
