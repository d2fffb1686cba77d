"""Norce Query exports: the time window of an incremental export (:mod:`.window`) and the atomic files it
writes (:mod:`.files`). Import-free on purpose."""
