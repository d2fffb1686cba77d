"""Tokens: what Norce's token endpoint takes and what its answers mean (:mod:`.endpoint`), how long tokens
live and how often one may be asked for (:mod:`.cache`), which store is shared beyond one process
(:mod:`.store`), and the machine-wide store (:mod:`.machine_store`). Import-free on purpose."""
