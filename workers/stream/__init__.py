"""The stream room: the Faust app and what feeds its agents whole fetches.

The one home of Faust's and aiokafka's consumer internals (``tests/unit/test_private_apis.py``
lists each and fails when one is reached from elsewhere): the app and its consumer
(``faust_app``), the assignor that gives every member of a group its share (``assignor``),
whole fetches handed to batch agents (``fetched``), the offset ledger that says what may be
committed (``offsets``, ``gaps``), fetched high-water marks (``highwaters``), the snapshotter's
rule table (``rule_table``) and the typed names of Faust's values (``faust_types``).
"""
