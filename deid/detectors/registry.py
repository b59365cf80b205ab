"""The pipeline's components, one registry: the config validates `components` and each component's settings
against it, and the pipeline builds from it. Each class declares itself (deid.detectors.base.Component: name,
entity types, required annotation, the shared data it uses, settings); the order here is the default order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from deid.detectors.address import AddressDetector
from deid.detectors.contact import ContactDetector
from deid.detectors.date import AgeDetector, DateDetector
from deid.detectors.hospital import HospitalDetector
from deid.detectors.id_number import IdNumberDetector
from deid.detectors.identifiers import IdentifierDetector
from deid.detectors.medical import PregnancyDetector, StdDetector
from deid.detectors.name import NameDetector
from deid.detectors.ner import LacNer
from deid.detectors.workplace import WorkplaceDetector
from deid.gazetteer import Gazetteer
from deid.resources import Resources
from deid.vocabulary import ClinicalVocabulary


@dataclass
class Shared:
    """What components are built with: one resources folder, and the indexes several of them search (the
    gazetteer reads its stop words from that folder)."""
    resources: Resources
    gazetteer: Gazetteer = field(init=False)
    vocabulary: ClinicalVocabulary = field(init=False)

    def __post_init__(self):
        self.gazetteer = Gazetteer(self.resources)
        self.vocabulary = ClinicalVocabulary(resources=self.resources)


COMPONENTS: dict[str, type] = {c.name: c for c in (
    LacNer, IdNumberDetector, ContactDetector, HospitalDetector, AddressDetector, NameDetector, StdDetector,
    PregnancyDetector, DateDetector, AgeDetector, IdentifierDetector, WorkplaceDetector)}


def build(names: tuple[str, ...], shared: Shared, settings: dict[str, dict]) -> list[tuple[str, object]]:
    """The named components, in order, each built once with its settings (defaults filled in by the config)."""
    made: dict[str, object] = {}

    def component(name: str):
        if name not in made:
            cls = COMPONENTS[name]
            own = {**cls.settings, **settings.get(name, {})}
            made[name] = (cls.create(shared, own, component) if hasattr(cls, "create")
                          else cls(**{u: getattr(shared, u) for u in cls.uses}, **own))
        return made[name]

    return [(name, component(name)) for name in names]
