"""Operations tooling: the failover and restore drill, and configuration templates."""
