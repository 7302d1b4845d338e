"""Every Kubernetes name and the refresher's schedule are checked before anything is rendered (issue 9 item 4).

The rule is Kubernetes' own (RFC 1123 label for namespaces, subdomain for the objects), matched on
the whole string and ASCII only: a trailing newline, a non-ASCII letter, an over-long name or a
non-string is a ``ConfigurationError`` naming the argument, the value (repr) and the rule, raised
before any credential is resolved or any manifest built.
"""

from __future__ import annotations

import pytest

from flyte_private_registry import (
    ConfigurationError,
    CronJobRefresher,
    ExternalSecretsRefresher,
    PrivateRegistry,
    cluster_objects,
)
from flyte_private_registry.pull._refresher import cron_schedule_problem

BAD_NAMES = [
    pytest.param("regcred\n", "may hold only lower-case ASCII", id="trailing-newline"),
    pytest.param("\nregcred", "may hold only lower-case ASCII", id="leading-newline"),
    pytest.param("régcred", "may hold only lower-case ASCII", id="non-ascii"),
    pytest.param("Default", "may hold only lower-case ASCII", id="upper-case"),
    pytest.param("", "is empty", id="empty"),
    pytest.param("a" * 254, "longer than 253", id="too-long"),
    pytest.param(5, "must be a string, not int", id="wrong-type"),
]
BAD_NAMESPACES = [
    *BAD_NAMES[:5],
    pytest.param("a" * 64, "longer than 63", id="too-long"),
    pytest.param("team.dev", "may hold only lower-case ASCII letters, digits and '-'", id="dot"),
    pytest.param(5, "must be a string, not int", id="wrong-type"),
]


class Unresolvable:
    """A keychain that fails the test if asked: names must be refused before credentials are resolved."""

    name = "must not be asked"

    def resolve(self, resource):
        raise AssertionError("a credential was resolved before the names were checked")


@pytest.fixture
def harbor():
    return PrivateRegistry("harbor.example.com/ml", keychains=(Unresolvable(),), pull_secret="harbor-pull")


def _message(info) -> str:
    return str(info.value)


@pytest.mark.parametrize(("value", "rule"), BAD_NAMES)
@pytest.mark.parametrize("argument", ["service_account", "pod_template"])
def test_object_names_are_checked(harbor, argument, value, rule):
    with pytest.raises(ConfigurationError) as info:
        harbor.cluster_objects(namespaces=["team"], **{argument: value})
    assert f"{argument}={value!r} is not valid" in _message(info) and rule in _message(info)


@pytest.mark.parametrize(("value", "rule"), BAD_NAMES[:5])
def test_each_service_account_of_a_list_is_checked(harbor, value, rule):
    with pytest.raises(ConfigurationError, match=rule):
        harbor.cluster_objects(namespaces=["team"], service_account=["default", value])


@pytest.mark.parametrize(("value", "rule"), BAD_NAMESPACES)
def test_propeller_namespace_and_namespaces_are_checked(harbor, value, rule):
    with pytest.raises(ConfigurationError) as info:
        harbor.cluster_objects(namespaces=["team"], pod_template="flyte-pull", propeller_namespace=value)
    assert f"propeller_namespace={value!r} is not valid: a Kubernetes namespace name" in _message(info)
    assert rule in _message(info)
    with pytest.raises(ConfigurationError) as info:
        harbor.cluster_objects(namespaces=["team", value])
    assert f"namespaces={value!r} is not valid" in _message(info) and rule in _message(info)


@pytest.mark.parametrize(
    ("projects", "domains", "shown"),
    [
        (["flytesnacks\n"], ["development"], "'flytesnacks\\n-development'"),
        (["flytesnacks"], ["dév"], "'flytesnacks-dév'"),
        (["Flytesnacks"], ["development"], "'Flytesnacks-development'"),
        (["p" * 60], ["development"], "longer than 63"),
    ],
)
def test_project_and_domain_are_checked_through_the_namespace_they_make(harbor, projects, domains, shown):
    with pytest.raises(ConfigurationError) as info:
        harbor.cluster_objects(projects=projects, domains=domains)
    assert f"projects={projects[0]!r}, domains={domains[0]!r}: namespace" in _message(info)
    assert shown in _message(info)


@pytest.mark.parametrize("argument", ["projects", "domains", "namespaces"])
def test_a_single_string_where_a_list_belongs_is_refused(harbor, argument):
    """``projects="flytesnacks"`` would otherwise render namespaces f-development, l-development, ..."""
    options = {"projects": ["flytesnacks"], argument: "flytesnacks"}
    with pytest.raises(ConfigurationError, match=rf"{argument}= takes a list of names, not the single string"):
        harbor.cluster_objects(**options)


def test_wrong_typed_project_is_refused(harbor):
    with pytest.raises(ConfigurationError, match=r"projects= holds 5: a name must be a string, not int"):
        harbor.cluster_objects(projects=[5])


def test_pull_secret_names_are_checked_at_declaration_and_again_before_rendering(harbor):
    with pytest.raises(ConfigurationError, match=r"pull_secret='regcred\\n'"):
        PrivateRegistry("harbor.example.com/ml", username="a", password="b", pull_secret="regcred\n")
    object.__setattr__(harbor, "pull_secret", "regcred\n")  # a declaration built around the check
    assert harbor.pull_secret_name == "regcred\n"
    with pytest.raises(
        ConfigurationError, match=r"pull_secret \(of harbor\.example\.com/ml\)='regcred\\n' is not valid"
    ):
        cluster_objects([harbor], namespaces=["team"])


# -- the refresher -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */4 * * *",
        "*/15 * * * *",
        "0 0 1 1 *",
        "0 9-17/2 * * MON-FRI",
        "5,35 3 ? jan,Jul sun",
        "0 0 31 12 6",
        "7/10 * * * *",
        "0 0\t* * *",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ],
)
def test_cron_schedules_kubernetes_accepts(schedule):
    assert cron_schedule_problem(schedule) is None
    assert CronJobRefresher(schedule=schedule).schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("0 */4 * * *\n", "line break"),
        (" 0 */4 * * *", "leading or trailing whitespace"),
        ("0 */4 * * *\n0 0 * * *", "line break"),
        ("0 */4 * * * ", "leading or trailing whitespace"),
        ("0 \uff14 * * *", "non-ASCII"),
        ("", "is empty"),
        (5, "must be a string, not int"),
        (None, "must be a string, not NoneType"),
        ("0 */4 * *", "has 4 fields, not 5"),
        ("0 0 */4 * * *", "has 6 fields, not 5"),
        ("60 * * * *", "minute field '60'"),
        ("0 24 * * *", "hour field '24'"),
        ("0 0 0 * *", "day of month field '0'"),
        ("0 0 32 * *", "day of month field '32'"),
        ("0 0 * 13 *", "month field '13'"),
        ("0 0 * FOO *", "not one of JAN/FEB"),
        ("0 0 * * 7", "day of week field '7'"),
        ("*/0 * * * *", "step '0'"),
        ("*/x * * * *", "step 'x'"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "minute field '1,,2'"),
        ("-1 * * * *", "minute field '-1'"),
        ("@every 1h", "not a macro Kubernetes knows"),
        ("@Hourly", "not a macro Kubernetes knows"),
        ("TZ=UTC 0 * * * *", "timeZone field"),
        ("CRON_TZ=UTC 0 * * * *", "timeZone field"),
        ("1" * 300 + " * * * *", "outside 0-59"),
    ],
)
def test_cron_schedules_refused_with_the_rule(schedule, problem):
    with pytest.raises(ConfigurationError) as info:
        CronJobRefresher(schedule=schedule)
    message = _message(info)
    assert f"CronJobRefresher(schedule=)={schedule!r} is not a CronJob schedule" in message
    assert problem in message and "five fields separated by spaces" in message


@pytest.mark.parametrize(("value", "rule"), BAD_NAMESPACES)
def test_refresher_namespace_is_checked(value, rule):
    with pytest.raises(ConfigurationError, match=rule) as info:
        CronJobRefresher(namespace=value)
    assert f"CronJobRefresher(namespace=)={value!r}" in _message(info)


@pytest.mark.parametrize(("value", "rule"), BAD_NAMES)
def test_refresher_service_accounts_are_checked(value, rule):
    with pytest.raises(ConfigurationError, match=rule):
        CronJobRefresher(service_account=value)
    with pytest.raises(ConfigurationError, match=rule) as info:
        ExternalSecretsRefresher(service_account=value)
    assert f"ExternalSecretsRefresher(service_account=)={value!r}" in _message(info)


@pytest.mark.parametrize("value", ["1h\n", "", "1 h", "one hour", 3600, "1d"])
def test_external_secrets_refresh_interval_is_a_duration(value):
    with pytest.raises(ConfigurationError, match=r"refresh_interval=\) .* is not a duration"):
        ExternalSecretsRefresher(refresh_interval=value)
    assert ExternalSecretsRefresher(refresh_interval="1h30m").refresh_interval == "1h30m"


@pytest.mark.parametrize(("field", "value"), [("aws_cli_image", "img\n"), ("python_image", ""), ("role_arn", "role")])
def test_refresher_images_and_role_are_checked(field, value):
    with pytest.raises(ConfigurationError, match=rf"CronJobRefresher\({field}=\)"):
        CronJobRefresher(**{field: value})
