"""The interop run's reading of what the third-party suites report (the run itself needs the
package index and takes many minutes: `python3 -m caldav_bridge.bootstrap interop`, not CI)."""

from __future__ import annotations

import json

from caldav_bridge.cli.interop import junit_outcome, server_errors, server_tester_outcome

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_caldav.TestForServerbridge" name="testSearchEvent" />
<testcase classname="tests.test_caldav.TestForServerbridge" name="testPrincipals">
  <failure message="KeyError: 'calendar-home-set'&#10;more">traceback</failure></testcase>
<testcase classname="tests.test_caldav.TestForServerbridge" name="testFreeBusy">
  <error message="fixture failed">traceback</error></testcase>
<testcase classname="tests.test_caldav.TestProxy" name="testWithEnvironment">
  <skipped type="pytest.skip" message="work in progress" /></testcase>
</testsuite></testsuites>"""


def test_a_junit_report_counts_errors_as_failures_with_their_first_line() -> None:
    outcome = junit_outcome("caldav", JUNIT)
    assert (outcome.passed, outcome.failed, outcome.skipped) == (1, 2, 1)
    assert outcome.failures == [
        "tests.test_caldav.TestForServerbridge::testPrincipals: KeyError: 'calendar-home-set'",
        "tests.test_caldav.TestForServerbridge::testFreeBusy: fixture failed",
    ]
    assert not outcome.ok
    assert outcome.line() == "caldav: 1 passed, 2 failed, 1 skipped"


def test_the_testers_features_not_full_are_listed_and_only_wrong_ones_fail() -> None:
    report = "log noise before the report\n" + json.dumps(
        {
            "features": {
                "create-calendar": {"support": "full"},
                "sync-token.limit": {"support": "unsupported", "behaviour": "ignored"},
                "get-current-user-principal.has-calendar": {"value": True},
                "search.text": {"support": "broken"},
            }
        }
    )
    outcome = server_tester_outcome("caldav-server-tester", report)
    assert (outcome.passed, outcome.failed, outcome.skipped) == (1, 1, 1)
    assert outcome.line() == (
        "caldav-server-tester: 1 passed, 1 failed, 1 skipped; "
        "not full: search.text (broken), sync-token.limit (unsupported)"
    )
    assert outcome.failures == ["search.text: broken", "sync-token.limit: unsupported ignored"]


def test_an_unsupported_feature_alone_does_not_fail_the_tester() -> None:
    report = json.dumps({"features": {"principal-search": {"support": "unknown"}}})
    assert server_tester_outcome("caldav-server-tester", report).ok


def test_the_bridges_errors_are_found_in_its_log() -> None:
    log = "\n".join(
        [
            "[2026-12-01 12:42:47 +0000] [1/waitress-0] [WARNING] Precondition failed",
            "[2026-12-01 12:42:48 +0000] [1/waitress-1] [ERROR] An exception occurred during PUT",
            "Traceback (most recent call last):",
        ]
    )
    assert len(server_errors(log)) == 2
