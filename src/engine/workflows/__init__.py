"""Workflows: chains, groups, chords and small DAGs of plain tasks, joined in Redis.

Each step is an ordinary task carrying a `workflow` label; when a step ends, the worker that
recorded its final state records it in the workflow's hash (once per step, by a script) and
dispatches what became ready, under task ids derived from the workflow and step, so a crash and
redelivery re-publishes the same ids and JetStream de-duplicates them.

May use every other stage.
"""
