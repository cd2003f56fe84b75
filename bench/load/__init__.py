"""The load harness behind ``python -m bench write-load | connections | fanout``.

Modules, in the order a run uses them: :mod:`.cli` (options), :mod:`.servers` (the gateway or
the echo server as subprocesses), :mod:`.rest` (users, events and tokens through the REST
API), :mod:`.generator` (the load-generator processes), :mod:`.schedule` (open-loop arrival
times), :mod:`.histograms` (HdrHistogram merging), :mod:`.verify` (what the store holds versus
what was acked), :mod:`.report` (terminal table, ``result.json``, ``summary.md``, plot).
"""
