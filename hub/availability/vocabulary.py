"""Systems, codes and urls the availability package reads and writes (one place, so a reader greps once)."""

from __future__ import annotations

HUB = "https://zorgnet-hub.nl/fhir"
CARE_PRODUCT = f"{HUB}/CodeSystem/care-product"
CARE_PRODUCT_EXT = f"{HUB}/StructureDefinition/care-product"
BED_RESERVATION_EXT = f"{HUB}/StructureDefinition/bed-reservation"
BED_STATUS_EXTRA = f"{HUB}/CodeSystem/bed-status-extra"
V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"
PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
SANER_GROUPS = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasureGroupSystem"
SANER_VALUES = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasuredValues"
REPORT_PROFILE = f"{HUB}/StructureDefinition/HubBedAvailabilityReport"
AVAILABILITY_MEASURE = f"{HUB}/Measure/bed-availability"
# Hub extension on generated MeasureReports: the figure is older than the staleness period (valueBoolean).
# profiles/ does not publish its StructureDefinition yet (see the package report).
STALE_EXT = f"{HUB}/StructureDefinition/availability-stale"
# Detail counts the three SANER populations do not carry (valueInteger each).
RESERVED_EXT = f"{HUB}/StructureDefinition/availability-reserved"
UNAVAILABLE_EXT = f"{HUB}/StructureDefinition/availability-unavailable"

# HL7 v2 table 0116 Bed Status; "reserved" is bed-status-extra (0116 has no such code).
BED_STATUS = {"U": "Unoccupied", "O": "Occupied", "C": "Closed", "K": "Contaminated", "H": "Housekeeping",
              "I": "Isolated"}
RESERVED = "reserved"
# Dutch labels for the coordination-point pages and the JSON for dashboards.
STATUS_NL = {"U": "vrij", "O": "bezet", "C": "gesloten", "K": "besmet", "H": "schoonmaak", "I": "isolatie",
             RESERVED: "gereserveerd", "": "onbekend"}

# Subscription.criteria that selects availability changes (query: product, organization, region; all optional).
SUBSCRIPTION_CRITERIA = "HealthcareService/$availability"
UNKNOWN_REGION = "Onbekend"
