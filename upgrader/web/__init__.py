"""HTTP adapters: the upstream release listing (``catalog refresh``) and the schedule's webhook."""
