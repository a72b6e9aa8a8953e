//! MIME and CMS: sign, verify, encrypt, decrypt and open S/MIME messages through the core ports.
