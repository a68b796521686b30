"""The root conftest: every shared fixture lives in the test-support package everhash/testing/."""

pytest_plugins = ["everhash.testing.fixtures"]
