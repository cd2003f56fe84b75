"""Active ISO 4217 currency codes.

Python ships no currency table, and a regular expression (three upper-case letters) would let
``XYZ`` or ``ABC`` into the payments table, where no payment provider could settle them. This
is the list of codes in circulation (ISO 4217 list one, 2024), without the fund codes, the
precious metals and the testing codes (``XTS``, ``XXX``), which are not money anyone pays with.
"""

from __future__ import annotations

# One string, split: a list literal of 157 codes would be formatted one code per line.
_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split()  # noqa: SIM905

ISO_4217_ACTIVE: frozenset[str] = frozenset(_CODES)


def is_active_currency(code: str) -> bool:
    """Whether ``code`` is an active ISO 4217 code (exact, upper-case)."""
    return code in ISO_4217_ACTIVE
