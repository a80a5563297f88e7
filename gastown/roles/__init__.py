"""The roles: polecat (sling, spawn, done), witness, deacon, scheduler, mayor."""
