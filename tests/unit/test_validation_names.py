"""Name, label and address predicates: apimachinery's rules and messages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apimachinery import names

Predicate = Callable[[str], list[str]]

CASES: list[tuple[Predicate, str, bool]] = [
    (names.is_dns1123_label, "a", True),
    (names.is_dns1123_label, "0", True),
    (names.is_dns1123_label, "123-abc", True),
    (names.is_dns1123_label, "a" * 63, True),
    (names.is_dns1123_label, "a" * 64, False),
    (names.is_dns1123_label, "", False),
    (names.is_dns1123_label, "A", False),
    (names.is_dns1123_label, "-a", False),
    (names.is_dns1123_label, "a-", False),
    (names.is_dns1123_label, "a_b", False),
    (names.is_dns1123_label, "a.b", False),
    (names.is_dns1123_label, "a\n", False),
    (names.is_dns1123_subdomain, "example.com", True),
    (names.is_dns1123_subdomain, "a-1.b-2.c", True),
    (names.is_dns1123_subdomain, "a" * 253, True),
    (names.is_dns1123_subdomain, "a" * 254, False),
    (names.is_dns1123_subdomain, "", False),
    (names.is_dns1123_subdomain, "a..b", False),
    (names.is_dns1123_subdomain, ".a", False),
    (names.is_dns1123_subdomain, "a.", False),
    (names.is_dns1123_subdomain, "A.b", False),
    (names.is_dns1035_label, "a", True),
    (names.is_dns1035_label, "abc-123", True),
    (names.is_dns1035_label, "1abc", False),
    (names.is_dns1035_label, "a-", False),
    (names.is_dns1035_label, "", False),
    (names.is_dns1035_label, "a" * 64, False),
    (names.is_qualified_name, "a", True),
    (names.is_qualified_name, "MyName", True),
    (names.is_qualified_name, "my.name_1-x", True),
    (names.is_qualified_name, "example.com/MyName", True),
    (names.is_qualified_name, "kubernetes.io/service-name", True),
    (names.is_qualified_name, "a" * 63, True),
    (names.is_qualified_name, "a" * 64, False),
    (names.is_qualified_name, "", False),
    (names.is_qualified_name, "/a", False),
    (names.is_qualified_name, "a/", False),
    (names.is_qualified_name, "a/b/c", False),
    (names.is_qualified_name, "-a", False),
    (names.is_qualified_name, "a b", False),
    (names.is_qualified_name, "Example.com/a", False),
    (names.is_valid_label_value, "", True),
    (names.is_valid_label_value, "a.b_c-D", True),
    (names.is_valid_label_value, "v" * 63, True),
    (names.is_valid_label_value, "v" * 64, False),
    (names.is_valid_label_value, "-a", False),
    (names.is_valid_label_value, "a b", False),
    (names.is_iana_svc_name, "http", True),
    (names.is_iana_svc_name, "h2c", True),
    (names.is_iana_svc_name, "web-http", True),
    (names.is_iana_svc_name, "a" * 15, True),
    (names.is_iana_svc_name, "a" * 16, False),
    (names.is_iana_svc_name, "", False),
    (names.is_iana_svc_name, "8080", False),
    (names.is_iana_svc_name, "a--b", False),
    (names.is_iana_svc_name, "-a", False),
    (names.is_iana_svc_name, "a-", False),
    (names.is_iana_svc_name, "Http", False),
    (names.is_iana_svc_name, "a_b", False),
    (names.is_valid_ip, "10.0.0.1", True),
    (names.is_valid_ip, "0.0.0.0", True),
    (names.is_valid_ip, "::1", True),
    (names.is_valid_ip, "2001:db8::1", True),
    (names.is_valid_ip, "", False),
    (names.is_valid_ip, "10.0.0", False),
    (names.is_valid_ip, "10.0.0.256", False),
    (names.is_valid_ip, "010.0.0.1", False),
    (names.is_valid_ip, "::ffff:10.0.0.1", False),
    (names.is_valid_ip, "fe80::1%eth0", False),
    (names.is_valid_ip, "10.0.0.1/24", False),
    (names.is_valid_ip, " 10.0.0.1", False),
    (names.is_valid_ip, "١.٢.٣.٤", False),  # non-ASCII digits
    (names.is_valid_cidr, "10.0.0.0/8", True),
    (names.is_valid_cidr, "10.244.1.0/24", True),
    (names.is_valid_cidr, "0.0.0.0/0", True),
    (names.is_valid_cidr, "2001:db8::/64", True),
    (names.is_valid_cidr, "10.0.0.1/24", False),
    (names.is_valid_cidr, "10.0.0.0/33", False),
    (names.is_valid_cidr, "10.0.0.0", False),
    (names.is_valid_cidr, "10.0.0.0/", False),
    (names.is_valid_cidr, "010.0.0.0/8", False),
    (names.is_valid_cidr, "10.0.0.0/08", False),
    (names.is_valid_cidr, "::ffff:10.0.0.0/120", False),
    (names.is_valid_cidr, "nope/8", False),
    (names.is_fully_qualified_domain_name, "db.example.com", True),
    (names.is_fully_qualified_domain_name, "db.example.com.", True),
    (names.is_fully_qualified_domain_name, "db", False),
    (names.is_fully_qualified_domain_name, "DB.example", False),
    (names.is_env_var_name, "MY_VAR", True),
    (names.is_env_var_name, "my.var-1 with spaces", True),
    (names.is_env_var_name, "", False),
    (names.is_env_var_name, "A=B", False),
    (names.is_env_var_name, "tab\there", False),
    (names.is_env_var_name, "é", False),
    (names.is_http_header_name, "X-Forwarded-For", True),
    (names.is_http_header_name, "X Forwarded", False),
]


@pytest.mark.parametrize(("predicate", "value", "ok"), CASES,
                         ids=[f"{p.__name__}-{v!r}-{ok}"[:80] for p, v, ok in CASES])
def test_predicate(predicate: Predicate, value: str, ok: bool) -> None:
    problems = predicate(value)
    assert (problems == []) is ok, problems
    assert all(isinstance(p, str) and p for p in problems)


@pytest.mark.parametrize("predicate", sorted({p for p, _, _ in CASES}, key=lambda p: p.__name__))
@pytest.mark.parametrize("value", [None, 5, ["a"], b"a"])
def test_non_strings_are_a_problem_not_a_crash(predicate: Predicate, value: object) -> None:
    assert predicate(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("predicate", "value", "messages"),
    [
        (names.is_dns1123_label, "My_Name", [
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
        (names.is_dns1123_label, "a.b", ["must not contain dots"]),
        (names.is_dns1123_label, "a" * 64, ["must be no more than 63 characters"]),
        (names.is_dns1123_subdomain, "a_b", [
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
        (names.is_qualified_name, "/a", ["prefix part must be non-empty"]),
        (names.is_qualified_name, "a/", [
            "name part must be non-empty",
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
        (names.is_iana_svc_name, "8080", ["must contain at least one letter (a-z)"]),
        (names.is_iana_svc_name, "a--b", ["must not contain consecutive hyphens"]),
        (names.is_valid_port_num, 0, ["must be between 1 and 65535, inclusive"]),
        (names.is_valid_ip, "nope", [
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]),
        (names.is_valid_ip, "010.0.0.1", ["must not have leading 0s"]),
        (names.is_valid_ip, "::ffff:10.0.0.1", ["must not be an IPv4-mapped IPv6 address"]),
        (names.is_valid_cidr, "nope", [
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]),
        (names.is_valid_cidr, "10.0.0.1/24", ["must not have bits set beyond the prefix length"]),
        (names.is_non_special_ip, "127.0.0.1", [
            "may not be in the loopback range (127.0.0.0/8, ::1/128)"]),
        (names.is_non_special_ip, "169.254.1.1", [
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)"]),
        (names.is_non_special_ip, "224.0.0.5", [
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]),
        (names.is_non_special_ip, "0.0.0.0", ["may not be unspecified (0.0.0.0)"]),
        (names.is_non_special_ip, "10.244.1.5", []),
        (names.is_valid_ipv4, "2001:db8::1", ["must be a valid IPv4 address"]),
        (names.is_valid_ipv6, "10.0.0.1", ["must be a valid IPv6 address"]),
    ],
)
def test_messages(predicate: Predicate, value: str, messages: list[str]) -> None:
    assert predicate(value) == messages


@pytest.mark.parametrize(("port", "ok"), [(1, True), (65535, True), (0, False), (65536, False),
                                          (-1, False), (True, False), (80.0, False)])
def test_port_numbers(port: object, ok: bool) -> None:
    assert (names.is_valid_port_num(port) == []) is ok  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "family"), [("10.0.0.1", 4), ("2001:db8::1", 6),
                                               ("10.0.0.0/8", 4), ("fd00::/64", 6),
                                               ("nope", None), (None, None)])
def test_ip_family(value: object, family: int | None) -> None:
    assert names.ip_family(value) == family  # type: ignore[arg-type]
