"""Fixed vocabularies the generator draws from (tuples, so iteration order never varies)."""

from __future__ import annotations

# (zone, city, country, currency an independent lab there charges in)
SITES: tuple[tuple[str, str, str, str], ...] = (
    ("Europe/London", "Cambridge", "United Kingdom", "GBP"),
    ("America/New_York", "Boston", "United States", "USD"),
    ("Australia/Sydney", "Sydney", "Australia", "AUD"),
    ("Asia/Tokyo", "Tokyo", "Japan", "USD"),
    ("Europe/Berlin", "Heidelberg", "Germany", "EUR"),
    ("America/Los_Angeles", "San Diego", "United States", "USD"),
)

# Two or three currencies per organisation, cycled over its labs.
ORG_CURRENCIES: tuple[tuple[str, ...], ...] = (
    ("GBP", "USD", "EUR"),
    ("USD", "EUR"),
    ("AUD", "USD", "GBP"),
    ("EUR", "CHF"),
)

ORGANISATIONS: tuple[tuple[str, str], ...] = (
    ("University of Northbridge", "academia"),
    ("Helix Therapeutics Ltd", "industry"),
    ("Southern Cross Institute of Science", "academia"),
    ("Kestrel Biologics", "industry"),
    ("Lakeside Medical Research Council", "academia"),
    ("Aurora Materials GmbH", "industry"),
)

DEPARTMENTS: tuple[str, ...] = (
    "Department of Chemistry", "Department of Physics", "School of Biosciences",
    "Department of Materials Science", "Faculty of Medicine", "Research & Development",
)

LABS: tuple[str, ...] = (
    "Cambridge Graphene Center", "Cryo-EM Facility", "Proteomics Core", "Flow Cytometry Core",
    "Genomics Platform", "Advanced Imaging Lab", "NMR Centre", "Structural Biology Unit",
    "Analytical Chemistry Lab", "Nanofabrication Suite", "Bioinformatics Hub",
    "Cell Culture Facility",
)

# (category, sub-category, instrument, manufacturer, model)
INSTRUMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Microscopy", "Electron Microscopes", "Cryo-TEM", "Thermo Fisher", "Krios G4"),
    ("Microscopy", "Confocal Microscopes", "Confocal Microscope", "Zeiss", "LSM 980"),
    ("Spectrometry", "Mass Spectrometers", "Orbitrap Mass Spectrometer", "Thermo Fisher",
     "Exploris 480"),
    ("Cytometry", "Flow Cytometers", "Flow Cytometer", "BD Biosciences", "FACSymphony A5"),
    ("Sequencing", "Sequencers", "Sequencer", "Illumina", "NovaSeq X"),
    ("Chromatography", "HPLC", "HPLC System", "Agilent", "1260 Infinity II"),
    ("Imaging", "Plate Readers", "Plate Reader", "BMG Labtech", "CLARIOstar Plus"),
    ("Spectroscopy", "NMR", "NMR Spectrometer", "Bruker", "Avance NEO 600"),
    ("Genomics", "qPCR", "qPCR Machine", "Bio-Rad", "CFX Opus 96"),
    ("Structural Biology", "X-ray", "X-ray Diffractometer", "Rigaku", "XtaLAB Synergy"),
)

CHILD_MODES: tuple[str, ...] = ("Cryo stage", "EDS detector", "Autoloader", "Live-cell module")

AVAILABILITY: tuple[str, ...] = ("available",) * 17 + ("under_maintenance", "under_maintenance",
                                                        "unavailable")

FIRST_NAMES: tuple[str, ...] = (
    "Amelia", "Niklas", "Priya", "Kenji", "Sofia", "Oluwaseun", "Liam", "Mei", "Jakob",
    "Chloe", "Mateo", "Aisha", "Lucas", "Hannah", "Ravi", "Isla", "Tomasz", "Yuki",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Müller", "Patel", "Tanaka", "García", "Okafor", "O'Brien", "Chen", "Novak",
    "Dubois", "Rossi", "Khan", "Silva", "Nguyen", "Jensen", "Walker", "Kowalski", "Sato",
)

GROUP_SUFFIXES: tuple[str, ...] = ("Group", "Lab Users", "Imaging Users", "Students")

ADD_ONS: tuple[str | None, ...] = (
    None, None, None, None, None, None, "", "", "Data analysis service included",
    "Technician assistance", "Consumables: 2 grids", "Training session",
)

NOTES: tuple[str, ...] = (
    "Please leave the stage clean.", "Sample prep done the day before.",
    "Extended because of a detector fault.", "Technician will be present.",
    "Rebooked after the power cut.", "Cancelled by requester.",
)

PROJECT_TOPICS: tuple[str, ...] = (
    "Graphene transport study", "Membrane protein structures", "Tumour microenvironment",
    "Battery cathode ageing", "Single-cell atlas", "Antibody stability screen",
)

FUNDERS: tuple[str, ...] = ("EP", "BB", "MR", "NIH-R01", "ARC-DP", "ERC-StG")
