//! Secrets that cannot be printed and are compared in constant time.
