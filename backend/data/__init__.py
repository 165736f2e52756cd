"""What every resource's data side shares: owner-scoped statements, the owned-resource repository and
service bases, ids, quotas, position keys and ordering statements. Knows no resource: each one hands it
its table and read Struct."""
