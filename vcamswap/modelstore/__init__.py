"""Model store: the neural models' manifest, download and verification; stand-in and random-weight builders."""
