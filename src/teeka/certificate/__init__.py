"""Records for the ecosystem: verifiable certificates (HCERT) and FHIR (docs/certificates.md)."""
