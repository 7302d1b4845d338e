"""ECR host names: which hosts are ECR, and what account, region and partition each names.

Apart from the provider so that telling a host's provider (every first credential lookup does it)
never imports the ECR module and its pydantic model for a registry that is not ECR.
"""

from __future__ import annotations

import re
from functools import cache

from .._errors import ConfigurationError
from .._frozen import frozen

ECR_PUBLIC_HOST = "public.ecr.aws"
ECR_PUBLIC_REGION = "us-east-1"
HOST_FORMS = (
    "expected <12-digit account>.dkr.ecr.<region>.amazonaws.com (FIPS: dkr.ecr-fips; China: "
    "amazonaws.com.cn; GovCloud: region us-gov-west-1/us-gov-east-1) or public.ecr.aws/<alias> for ECR Public"
)

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_REGION_RE = re.compile(rf"^{_REGION}\Z", re.ASCII)
_PRIVATE_HOST = (
    rf"^(?P<account>\d{{12}})\.dkr(?P<dualstack>[.-])ecr(?P<fips>-fips)?\.(?P<region>{_REGION})\."
    r"(?P<suffix>amazonaws\.com(?:\.cn)?|on\.aws|on\.amazonwebservices\.com\.cn|c2s\.ic\.gov|sc2s\.sgov\.gov"
    r"|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)\Z"
)


@cache
def _private_host() -> re.Pattern[str]:
    """Compiled on first use: ~4 ms, which every first check of a registry that is not ECR would pay."""
    return re.compile(_PRIVATE_HOST, re.ASCII)


#: DNS suffix -> partition, for ARNs in error messages (GovCloud is told apart by region).
_PARTITIONS = {
    "amazonaws.com": "aws",
    "on.aws": "aws",
    "amazonaws.com.cn": "aws-cn",
    "on.amazonwebservices.com.cn": "aws-cn",
    "c2s.ic.gov": "aws-iso",
    "sc2s.sgov.gov": "aws-iso-b",
    "cloud.adc-e.uk": "aws-iso-e",
    "csp.hci.ic.gov": "aws-iso-f",
}
_REGION_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
)


@frozen()
class EcrHost:
    """What an ECR hostname says: account, region, partition, FIPS, or ECR Public."""

    host: str
    region: str
    account_id: str | None = None
    fips: bool = False
    partition: str = "aws"
    public: bool = False

    @property
    def registry_id(self) -> str:
        return self.account_id or "public"

    @property
    def service(self) -> str:
        return "ecr-public" if self.public else "ecr"

    def repository_arn(self, repository: str) -> str:
        if self.public:
            return f"arn:aws:ecr-public::<account>:repository/{repository}"
        return f"arn:{self.partition}:ecr:{self.region}:{self.account_id}:repository/{repository}"

    def api_repository(self, repository: str) -> str:
        """The name ECR's API uses: the full path privately, the path after the alias on ECR Public."""
        if not self.public:
            return repository
        _, _, name = repository.partition("/")
        if not name:
            raise ConfigurationError(
                f"ECR Public images are {ECR_PUBLIC_HOST}/<alias>/<name>; {ECR_PUBLIC_HOST}/{repository} has no alias"
            )
        return name


def parse_ecr_host(host: str) -> EcrHost:
    """Parse an ECR registry host; a ``ValueError`` (``ConfigurationError``) names the accepted forms."""
    name = host.strip().lower()
    if name == ECR_PUBLIC_HOST:
        return EcrHost(host=name, region=ECR_PUBLIC_REGION, public=True)
    if ":" in name:
        raise ConfigurationError(f"{host!r} is not an ECR host: ECR hosts have no port; {HOST_FORMS}")
    match = _private_host().match(name)
    if not match:
        raise ConfigurationError(f"{host!r} is not an ECR host: {HOST_FORMS}")
    region, suffix = match.group("region"), match.group("suffix")
    partition = "aws-us-gov" if region.startswith("us-gov-") else _PARTITIONS[suffix]
    return EcrHost(
        host=name,
        region=region,
        account_id=match.group("account"),
        fips=match.group("fips") is not None,
        partition=partition,
    )


def is_ecr_host(host: str) -> bool:
    name = host.strip().lower()
    if name != ECR_PUBLIC_HOST and ".dkr" not in name:  # what every private ECR host has
        return False
    try:
        parse_ecr_host(host)
    except ConfigurationError:
        return False
    return True


def ecr_host(account_id: str, region: str, *, fips: bool = False) -> str:
    """The private registry host of an account in a region (the right DNS suffix for its partition)."""
    if not isinstance(account_id, str):
        raise ConfigurationError(
            f"account_id={account_id!r}: pass the AWS account id as a string of 12 digits "
            "(account ids may start with 0, which an int would drop)"
        )
    if not re.fullmatch(r"\d{12}", account_id, re.ASCII):
        raise ConfigurationError(f"account_id={account_id!r} is not a 12-digit AWS account id")
    region = region.strip().lower()
    if not _REGION_RE.match(region):
        raise ConfigurationError(f"region={region!r} is not an AWS region name such as 'us-east-1' or 'cn-north-1'")
    suffix = next((s for prefix, s in _REGION_SUFFIXES if region.startswith(prefix)), "amazonaws.com")
    return f"{account_id}.dkr.ecr{'-fips' if fips else ''}.{region}.{suffix}"
