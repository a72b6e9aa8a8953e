//! The C contract between smimekit and vendor plugins (ABI v1).
//!
//! A plugin is a shared library exporting one symbol, [`ENTRY_SYMBOL`]
//! (`smimekit_plugin_entry`). The host calls it with an interface name ([`KEYSTORE_INTERFACE`],
//! [`DIRECTORY_INTERFACE`]) and the ABI major version it speaks; the plugin returns a pointer to a
//! static, versioned table of function pointers, or null when it does not provide that interface
//! in that major version. Every table starts with a [`Header`] (major, minor, size, flags): fields
//! are only ever appended, so a host reads only the fields that fit in `size`, and a null function
//! pointer means "not supported". This is PKCS#11's `CK_FUNCTION_LIST` pattern.
//!
//! Everything crossing the boundary is bytes: DER certificates, UTF-8 strings with explicit
//! lengths, and [`list`]-encoded sequences. Handles are opaque pointers owned by the plugin. Every
//! function returns a fixed numeric [`Status`]; output and error messages come back in an
//! [`Buf`] allocated by the plugin and released with the table's `free_buf`.
//!
//! This crate deliberately holds no behaviour besides the list encoding and the C header
//! generator: loading lives in `smimekit-plugin-host`, the Rust vendor side in
//! `smimekit-plugin-sdk`. The normative text is `docs/plugin-abi.md`; the C header
//! `include/smimekit_plugin.h` is generated from the declarations below ([`c_header`]) and a
//! test fails when the checked-in copy drifts.

use std::ffi::{c_char, c_void};

pub mod list;

/// The exported entry point's name.
pub const ENTRY_SYMBOL: &str = "smimekit_plugin_entry";
/// The interface name of the key-store table ([`KeyStoreV1`]).
pub const KEYSTORE_INTERFACE: &str = "smimekit.keystore";
/// The interface name of the directory table ([`DirectoryV1`]).
pub const DIRECTORY_INTERFACE: &str = "smimekit.directory";
/// The ABI major version this crate describes.
pub const ABI_MAJOR: u32 = 1;
/// The ABI minor version this crate describes (fields appended since 1.0).
pub const ABI_MINOR: u32 = 1;

/// The signature of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn(interface: *const c_char, abi_major: u32) -> *const c_void;

/// A status code: `0` is success, anything else a failure. Numbers are fixed forever and never
/// reused; a host treats a number above [`Status::MAX`] as a plugin bug.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub u32);

macro_rules! statuses {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal, $c:literal;)*) => {
        impl Status {
            $($(#[doc = $doc])* pub const $name: Status = Status($value);)*
            /// Every status: Rust name, C name, value, meaning.
            pub const ALL: &'static [(&'static str, &'static str, u32, &'static str)] = &[
                $((stringify!($name), $c, $value, concat!($($doc),*)),)*
            ];
        }
    };
}

statuses! {
    /// Success.
    OK = 0, "SMK_OK";
    /// A failure not covered below; the message says what.
    FAILED = 1, "SMK_FAILED";
    /// The operation or argument value is not supported by this plugin or key.
    UNSUPPORTED = 2, "SMK_UNSUPPORTED";
    /// No such key, store or recipient.
    NOT_FOUND = 3, "SMK_NOT_FOUND";
    /// A secret (password, PIN) is needed: the host asks the person and calls unlock.
    NEEDS_UNLOCK = 4, "SMK_NEEDS_UNLOCK";
    /// The secret given to unlock was wrong.
    BAD_SECRET = 5, "SMK_BAD_SECRET";
    /// Input data (a reference, a key file, a certificate) could not be parsed.
    MALFORMED = 6, "SMK_MALFORMED";
    /// The backing store could not be reached or read.
    IO = 7, "SMK_IO";
    /// An argument broke the contract (null pointer, bad length, bad enum value).
    INVALID_ARGUMENT = 8, "SMK_INVALID_ARGUMENT";
    /// The plugin caught a panic or exception at its boundary; the handle may still be used.
    PANIC = 9, "SMK_PANIC";
    /// The recipient already exists.
    ALREADY_EXISTS = 10, "SMK_ALREADY_EXISTS";
    /// The directory refused the value.
    REJECTED = 11, "SMK_REJECTED";
    /// The directory or store is temporarily unavailable; retrying may help.
    UNAVAILABLE = 12, "SMK_UNAVAILABLE";
    /// The configuration handed to open is wrong.
    CONFIG = 13, "SMK_CONFIG";
}

impl Status {
    /// The highest status number defined by this version of the ABI.
    pub const MAX: u32 = 13;

    /// The C name (`SMK_NEEDS_UNLOCK`), or `None` for an undefined number.
    pub fn c_name(self) -> Option<&'static str> {
        Self::ALL.iter().find(|s| s.2 == self.0).map(|s| s.1)
    }
}

/// Table flag: every function may be called concurrently from any thread. Without it the host
/// makes every call of the plugin from one worker thread, one call at a time.
pub const FLAG_THREAD_SAFE: u32 = 1;

/// Signature algorithm, high byte of a scheme (`scheme = alg << 8 | digest`).
pub const SIG_RSA_PKCS1: u32 = 1;
pub const SIG_RSA_PSS: u32 = 2;
pub const SIG_ECDSA: u32 = 3;
pub const SIG_DSA: u32 = 4;
/// Digest algorithm, low byte of a scheme; also OAEP hash and MGF1 hash.
pub const DIGEST_MD5: u32 = 1;
pub const DIGEST_SHA1: u32 = 2;
pub const DIGEST_SHA224: u32 = 3;
pub const DIGEST_SHA256: u32 = 4;
pub const DIGEST_SHA384: u32 = 5;
pub const DIGEST_SHA512: u32 = 6;
/// RSA decryption padding.
pub const PADDING_PKCS1: u32 = 1;
pub const PADDING_OAEP: u32 = 2;
/// Key kinds reported by `key_kind` (`param`: RSA modulus bits, or an EC curve below).
pub const KEY_OTHER: u32 = 0;
pub const KEY_RSA: u32 = 1;
pub const KEY_EC: u32 = 2;
pub const CURVE_P256: u32 = 1;
pub const CURVE_P384: u32 = 2;
pub const CURVE_P521: u32 = 3;
/// Recipient kinds.
pub const RECIPIENT_MAILBOX: u32 = 1;
pub const RECIPIENT_CONTACT: u32 = 2;
/// Publish modes.
pub const PUBLISH_MERGE: u32 = 1;
pub const PUBLISH_REPLACE: u32 = 2;

/// Every constant above, for the C header: C name, value, comment.
pub const CONSTANTS: &[(&str, u32, &str)] = &[
    (
        "SMK_ABI_MAJOR",
        ABI_MAJOR,
        "The ABI major version of this header.",
    ),
    (
        "SMK_ABI_MINOR",
        ABI_MINOR,
        "The ABI minor version of this header.",
    ),
    (
        "SMK_FLAG_THREAD_SAFE",
        FLAG_THREAD_SAFE,
        "Header flag: calls may run concurrently on any thread.",
    ),
    (
        "SMK_SIG_RSA_PKCS1",
        SIG_RSA_PKCS1,
        "Scheme high byte: RSASSA-PKCS1-v1_5 (sign a DigestInfo).",
    ),
    (
        "SMK_SIG_RSA_PSS",
        SIG_RSA_PSS,
        "Scheme high byte: RSASSA-PSS, MGF1 with the same digest, salt = digest length.",
    ),
    (
        "SMK_SIG_ECDSA",
        SIG_ECDSA,
        "Scheme high byte: ECDSA, signature as DER Ecdsa-Sig-Value.",
    ),
    (
        "SMK_SIG_DSA",
        SIG_DSA,
        "Scheme high byte: DSA, signature as DER Dss-Sig-Value.",
    ),
    ("SMK_DIGEST_MD5", DIGEST_MD5, "Digest: MD5."),
    ("SMK_DIGEST_SHA1", DIGEST_SHA1, "Digest: SHA-1."),
    ("SMK_DIGEST_SHA224", DIGEST_SHA224, "Digest: SHA-224."),
    ("SMK_DIGEST_SHA256", DIGEST_SHA256, "Digest: SHA-256."),
    ("SMK_DIGEST_SHA384", DIGEST_SHA384, "Digest: SHA-384."),
    ("SMK_DIGEST_SHA512", DIGEST_SHA512, "Digest: SHA-512."),
    (
        "SMK_PADDING_PKCS1",
        PADDING_PKCS1,
        "RSA decryption: PKCS#1 v1.5.",
    ),
    ("SMK_PADDING_OAEP", PADDING_OAEP, "RSA decryption: OAEP."),
    ("SMK_KEY_OTHER", KEY_OTHER, "Key kind: other."),
    (
        "SMK_KEY_RSA",
        KEY_RSA,
        "Key kind: RSA (param = modulus bits).",
    ),
    ("SMK_KEY_EC", KEY_EC, "Key kind: EC (param = SMK_CURVE_*)."),
    ("SMK_CURVE_P256", CURVE_P256, "Curve P-256."),
    ("SMK_CURVE_P384", CURVE_P384, "Curve P-384."),
    ("SMK_CURVE_P521", CURVE_P521, "Curve P-521."),
    (
        "SMK_RECIPIENT_MAILBOX",
        RECIPIENT_MAILBOX,
        "Recipient kind: a mailbox of the organisation.",
    ),
    (
        "SMK_RECIPIENT_CONTACT",
        RECIPIENT_CONTACT,
        "Recipient kind: an external contact.",
    ),
    (
        "SMK_PUBLISH_MERGE",
        PUBLISH_MERGE,
        "Publish: add the certificate, keep the others.",
    ),
    (
        "SMK_PUBLISH_REPLACE",
        PUBLISH_REPLACE,
        "Publish: keep only the new certificate.",
    ),
];

/// A byte buffer handed from the plugin to the host. The plugin allocates it; the host releases
/// it exactly once with the table's `free_buf(ptr, len)` (also after a failure, when the buffer
/// holds a UTF-8 message). `ptr` null means empty.
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Buf {
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }
}

/// Opaque handle of an open key store (plugin-owned; released with `store_close`).
#[repr(C)]
#[derive(Debug)]
pub struct Store {
    _private: [u8; 0],
}

/// Opaque handle of an open key (plugin-owned; released with `key_close`).
#[repr(C)]
#[derive(Debug)]
pub struct Key {
    _private: [u8; 0],
}

/// Opaque handle of an open directory (plugin-owned; released with `dir_close`).
#[repr(C)]
#[derive(Debug)]
pub struct Dir {
    _private: [u8; 0],
}

/// The prefix of every table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// The ABI major version of the table; must equal the one the host asked for.
    pub abi_major: u32,
    /// The minor version the plugin was built against (informative; `size` decides).
    pub abi_minor: u32,
    /// `sizeof` the table as the plugin was compiled: the host reads no field beyond it.
    pub size: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}

/// Declares a `#[repr(C)]` table and its C text from one list, so the two cannot drift.
macro_rules! abi_table {
    (
        $(#[doc = $doc:literal])* $name:ident, $cname:literal {
            $($(#[doc = $fdoc:literal])* $field:ident : $ty:ty => $cdecl:literal,)*
        }
    ) => {
        $(#[doc = $doc])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            $($(#[doc = $fdoc])* pub $field: $ty,)*
        }

        impl $name {
            /// The C declaration of this table.
            pub const C: CTable = CTable {
                name: $cname,
                doc: concat!($($doc, "\n"),*),
                fields: &[$((stringify!($field), $cdecl, concat!($($fdoc, "\n"),*)),)*],
            };
            /// Field names in declaration order, with their byte offsets.
            pub fn offsets() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), std::mem::offset_of!($name, $field)),)*]
            }
        }
    };
}

/// A table's C description (for the header generator).
#[derive(Debug)]
pub struct CTable {
    pub name: &'static str,
    pub doc: &'static str,
    /// (field, C declaration with `{}` for the field name, doc).
    pub fields: &'static [(&'static str, &'static str, &'static str)],
}

type Bytes = *const u8;

abi_table! {
    /// Interface `smimekit.keystore`, v1: a key store (`KeyStore` and `PrivateKey` ports).
    /// A KEYREF is routed to the first plugin whose `accepts` returns 1.
    KeyStoreV1, "smk_keystore_v1" {
        /// Must be first.
        header: Header => "smk_header {}",
        /// Unique key-store id (`[a-z0-9-]`, static, NUL-terminated), shown by `smimekit plugins`.
        name: *const c_char => "const char *{}",
        /// The plugin's version (static, NUL-terminated).
        version: *const c_char => "const char *{}",
        /// One line for `smimekit plugins` (static, NUL-terminated).
        description: *const c_char => "const char *{}",
        /// Releases a buffer this plugin returned. Required.
        free_buf: Option<unsafe extern "C" fn(*mut u8, usize)> => "void (*{})(uint8_t *ptr, size_t len)",
        /// Returns 1 when this store handles the KEYREF (UTF-8), else 0. Required; must not block.
        accepts: Option<unsafe extern "C" fn(Bytes, usize) -> u32> => "uint32_t (*{})(const uint8_t *ref, size_t ref_len)",
        /// Opens the store a KEYREF names; `cert` is an optional certificate path (len 0: none).
        /// On SMK_OK `*out` is a non-null handle. On failure `err` may hold a message. Required.
        store_open: Option<unsafe extern "C" fn(Bytes, usize, Bytes, usize, *mut *mut Store, *mut Buf) -> Status> => "smk_status (*{})(const uint8_t *ref, size_t ref_len, const uint8_t *cert, size_t cert_len, smk_store **out, smk_buf *err)",
        /// Releases a store handle (after every key opened from it was closed). Required.
        store_close: Option<unsafe extern "C" fn(*mut Store)> => "void (*{})(smk_store *store)",
        /// SMK_OK when usable now, SMK_NEEDS_UNLOCK (with a hint in `out`) when a secret is needed.
        /// Null: never locked.
        store_protection: Option<unsafe extern "C" fn(*mut Store, *mut Buf) -> Status> => "smk_status (*{})(smk_store *store, smk_buf *out)",
        /// Supplies the password or PIN (UTF-8). SMK_BAD_SECRET when wrong. Null: never locked.
        store_unlock: Option<unsafe extern "C" fn(*mut Store, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_store *store, const uint8_t *secret, size_t secret_len, smk_buf *err)",
        /// The keys: a list of triples (selector, label or empty, certificate DER or empty). Null: unsupported.
        store_list: Option<unsafe extern "C" fn(*mut Store, *mut Buf) -> Status> => "smk_status (*{})(smk_store *store, smk_buf *out)",
        /// Opens one key; an empty selector picks the first key with a certificate. Required.
        key_open: Option<unsafe extern "C" fn(*mut Store, Bytes, usize, *mut *mut Key, *mut Buf) -> Status> => "smk_status (*{})(smk_store *store, const uint8_t *selector, size_t selector_len, smk_key **out, smk_buf *err)",
        /// Releases a key handle. Required.
        key_close: Option<unsafe extern "C" fn(*mut Key)> => "void (*{})(smk_key *key)",
        /// The key's certificate (DER) into `out`. Required.
        key_certificate: Option<unsafe extern "C" fn(*mut Key, *mut Buf) -> Status> => "smk_status (*{})(smk_key *key, smk_buf *out)",
        /// The issuers that came with the key, as a list of DER certificates. Null: none.
        key_chain: Option<unsafe extern "C" fn(*mut Key, *mut Buf) -> Status> => "smk_status (*{})(smk_key *key, smk_buf *out)",
        /// The key kind (SMK_KEY_*) and its parameter (bits, SMK_CURVE_*). Required.
        key_kind: Option<unsafe extern "C" fn(*mut Key, *mut u32, *mut u32) -> Status> => "smk_status (*{})(smk_key *key, uint32_t *kind, uint32_t *param)",
        /// Signs a precomputed digest with `scheme` (SMK_SIG_* << 8 | SMK_DIGEST_*). Null: unsupported.
        key_sign_digest: Option<unsafe extern "C" fn(*mut Key, u32, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_key *key, uint32_t scheme, const uint8_t *digest, size_t digest_len, smk_buf *out)",
        /// Decrypts an RSA-wrapped key: `padding` SMK_PADDING_*; for OAEP the hash, MGF1 hash and label. Null: unsupported.
        key_decrypt: Option<unsafe extern "C" fn(*mut Key, u32, u32, u32, Bytes, usize, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_key *key, uint32_t padding, uint32_t oaep_hash, uint32_t oaep_mgf1, const uint8_t *label, size_t label_len, const uint8_t *wrapped, size_t wrapped_len, smk_buf *out)",
        /// ECDH with a peer point (uncompressed SEC1); `out` is the shared secret Z. Null: unsupported.
        key_ecdh: Option<unsafe extern "C" fn(*mut Key, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_key *key, const uint8_t *peer, size_t peer_len, smk_buf *out)",
    }
}

abi_table! {
    /// Interface `smimekit.directory`, v1: a directory backend (`Directory` port), selected by
    /// `kind = "<name>"` in a `[directory.NAME]` configuration table.
    DirectoryV1, "smk_directory_v1" {
        /// Must be first.
        header: Header => "smk_header {}",
        /// The directory kind (`[a-z0-9-]`, static, NUL-terminated), unique among all plugins.
        name: *const c_char => "const char *{}",
        /// The plugin's version (static, NUL-terminated).
        version: *const c_char => "const char *{}",
        /// One line for `smimekit plugins` (static, NUL-terminated).
        description: *const c_char => "const char *{}",
        /// Releases a buffer this plugin returned. Required.
        free_buf: Option<unsafe extern "C" fn(*mut u8, usize)> => "void (*{})(uint8_t *ptr, size_t len)",
        /// Opens a configured directory: its name and its table as TOML text (UTF-8). Required.
        dir_open: Option<unsafe extern "C" fn(Bytes, usize, Bytes, usize, *mut *mut Dir, *mut Buf) -> Status> => "smk_status (*{})(const uint8_t *name, size_t name_len, const uint8_t *config, size_t config_len, smk_dir **out, smk_buf *err)",
        /// Releases a directory handle. Required.
        dir_close: Option<unsafe extern "C" fn(*mut Dir)> => "void (*{})(smk_dir *dir)",
        /// Certificates for an address: a list of DER certificates (empty list when none). Required.
        dir_lookup: Option<unsafe extern "C" fn(*mut Dir, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_dir *dir, const uint8_t *address, size_t address_len, smk_buf *out)",
        /// Every recipient: a list of triples (address, kind as 1 byte SMK_RECIPIENT_*, list of DER). Null: unsupported.
        dir_recipients: Option<unsafe extern "C" fn(*mut Dir, *mut Buf) -> Status> => "smk_status (*{})(smk_dir *dir, smk_buf *out)",
        /// Publishes a certificate (`kind` SMK_RECIPIENT_*, `mode` SMK_PUBLISH_*); `out`: the list of DER held afterwards. Null: read-only.
        dir_publish: Option<unsafe extern "C" fn(*mut Dir, Bytes, usize, u32, Bytes, usize, u32, *mut Buf) -> Status> => "smk_status (*{})(smk_dir *dir, const uint8_t *address, size_t address_len, uint32_t kind, const uint8_t *cert, size_t cert_len, uint32_t mode, smk_buf *out)",
        /// Removes one certificate; `out`: the list of DER that remains. Null: unsupported.
        dir_unpublish: Option<unsafe extern "C" fn(*mut Dir, Bytes, usize, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_dir *dir, const uint8_t *address, size_t address_len, const uint8_t *cert, size_t cert_len, smk_buf *out)",
        /// Since 1.1. One recipient: `out` is one triple as in dir_recipients (address, kind, list
        /// of DER); SMK_NOT_FOUND when there is none. Null: the host uses dir_lookup (kind: mailbox).
        dir_recipient: Option<unsafe extern "C" fn(*mut Dir, Bytes, usize, *mut Buf) -> Status> => "smk_status (*{})(smk_dir *dir, const uint8_t *address, size_t address_len, smk_buf *out)",
        /// Since 1.1. dir_open with the configuration as key/value pairs instead of TOML text: a
        /// list alternating key and value (see docs/plugin-abi.md). Used instead of dir_open when
        /// non-null.
        dir_open_pairs: Option<unsafe extern "C" fn(Bytes, usize, Bytes, usize, *mut *mut Dir, *mut Buf) -> Status> => "smk_status (*{})(const uint8_t *name, size_t name_len, const uint8_t *pairs, size_t pairs_len, smk_dir **out, smk_buf *err)",
    }
}

impl KeyStoreV1 {
    /// The smallest table a v1 host accepts: everything up to `key_kind`. Fields after it are
    /// optional: a host reads a field beyond a table's `size` as null ("not supported").
    pub const MIN_SIZE: usize = std::mem::offset_of!(KeyStoreV1, key_sign_digest);
}

impl DirectoryV1 {
    /// The smallest table a v1 host accepts: everything up to `dir_lookup`.
    pub const MIN_SIZE: usize = std::mem::offset_of!(DirectoryV1, dir_recipients);
}

/// The C header for this ABI, generated from the declarations above.
pub fn c_header() -> String {
    let mut h = String::new();
    h.push_str(
        "/* smimekit plugin ABI v1: generated by smimekit-plugin-abi (c_header); do not edit.\n \
* Regenerate: UPDATE_EXPECT=1 cargo test -p smimekit-plugin-abi. Normative text: docs/plugin-abi.md. */\n\
#ifndef SMIMEKIT_PLUGIN_H\n#define SMIMEKIT_PLUGIN_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n\
#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
    );
    h.push_str("/* The exported entry point: returns the table for `interface` in `abi_major`, or NULL. */\n");
    h.push_str(&format!("#define SMK_ENTRY_SYMBOL \"{ENTRY_SYMBOL}\"\n"));
    h.push_str(&format!(
        "#define SMK_KEYSTORE_INTERFACE \"{KEYSTORE_INTERFACE}\"\n"
    ));
    h.push_str(&format!(
        "#define SMK_DIRECTORY_INTERFACE \"{DIRECTORY_INTERFACE}\"\n\n"
    ));
    h.push_str("/* Status codes: fixed forever, never reused. */\ntypedef uint32_t smk_status;\n");
    for (_, c, v, doc) in Status::ALL {
        h.push_str(&format!("#define {c} {v}u /* {doc} */\n"));
    }
    h.push('\n');
    for (c, v, doc) in CONSTANTS {
        h.push_str(&format!("#define {c} {v}u /* {doc} */\n"));
    }
    h.push_str(
        "\n/* A buffer allocated by the plugin, released by the host with the table's free_buf. */\n\
typedef struct smk_buf {\n  uint8_t *ptr;\n  size_t len;\n} smk_buf;\n\n\
/* Opaque handles, owned by the plugin. */\ntypedef struct smk_store smk_store;\n\
typedef struct smk_key smk_key;\ntypedef struct smk_dir smk_dir;\n\n\
/* The prefix of every table. */\ntypedef struct smk_header {\n  uint32_t abi_major;\n  \
uint32_t abi_minor;\n  uint32_t size; /* sizeof the table as compiled by the plugin */\n  \
uint32_t flags;\n} smk_header;\n",
    );
    for t in [KeyStoreV1::C, DirectoryV1::C] {
        h.push('\n');
        for line in t.doc.lines() {
            h.push_str(&format!("/*{line} */\n"));
        }
        h.push_str(&format!("typedef struct {} {{\n", t.name));
        for (field, decl, doc) in t.fields {
            for line in doc.lines() {
                h.push_str(&format!("  /*{line} */\n"));
            }
            h.push_str(&format!("  {};\n", decl.replace("{}", field)));
        }
        h.push_str(&format!("}} {};\n", t.name));
    }
    h.push_str(
        "\n/* Export this from the shared library. */\n\
const void *smimekit_plugin_entry(const char *interface_name, uint32_t abi_major);\n\n\
#ifdef __cplusplus\n}\n#endif\n\n#endif /* SMIMEKIT_PLUGIN_H */\n",
    );
    h
}
