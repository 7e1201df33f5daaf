"""The suite runner, the results store (``result.json``), Tables 4–6 and the report; the ``dropbench`` CLI.

Installed as ``dropbench.benchmarks``, beside ``dropbench.pretrain`` and ``dropbench.finetune``.
"""
