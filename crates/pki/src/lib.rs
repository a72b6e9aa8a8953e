//! Certificate containers (PEM, DER, PKCS#7 certs-only, Microsoft SST) and certificate facts.
