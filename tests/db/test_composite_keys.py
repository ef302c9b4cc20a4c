"""Child rows carry their parent's shop_domain, and a composite foreign key
(parent_id, shop_domain) -> parent(id, shop_domain) makes the database refuse a child that
points at another shop's parent, even when both shops exist."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import IntegrityError, connection, models, transaction

from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from advanced.models import KnowledgeDocument
from growth.factories import AdCampaignFactory, AdPerformanceFactory, SocialAnalyticsFactory, SocialPostFactory
from growth.models import SocialAnalytics
from tenancy.factories import ShopFactory
from tenancy.models import Shop

SHOP_A = "alpha-keys.myshopify.com"
SHOP_B = "bravo-keys.myshopify.com"
_variants = itertools.count(1)


@dataclass(frozen=True)
class Relation:
    """A parent table, its child table and the composite key between them."""

    constraint: str
    definition: str
    child_table: str
    parent_field: str
    make_parent: Callable[[Shop], models.Model]
    make_child: Callable[[models.Model, Shop], models.Model]

    def __str__(self) -> str:
        return self.child_table


def _document(shop: Shop) -> models.Model:
    return KnowledgeDocumentFactory(shop=shop, document_key="returns-policy", version=1, is_current=False)


def _next_version(previous: models.Model, shop: Shop) -> models.Model:
    return KnowledgeDocumentFactory(
        shop=shop, document_key="returns-policy", version=2, is_current=True, previous_version=previous
    )


RELATIONS = [
    Relation(
        constraint="growth_adperformance_campaign_shop_fk",
        definition=(
            "FOREIGN KEY (campaign_id, shop_domain) REFERENCES ad_campaigns(id, shop_domain) ON DELETE CASCADE"
        ),
        child_table="ad_performance",
        parent_field="campaign",
        make_parent=lambda shop: AdCampaignFactory(shop=shop),
        make_child=lambda parent, shop: AdPerformanceFactory(campaign=parent, shop=shop),
    ),
    Relation(
        constraint="growth_socialanalytics_post_shop_fk",
        definition=(
            "FOREIGN KEY (social_post_id, shop_domain, platform) "
            "REFERENCES social_posts(id, shop_domain, platform) ON DELETE CASCADE"
        ),
        child_table="social_analytics",
        parent_field="social_post",
        make_parent=lambda shop: SocialPostFactory(shop=shop),
        make_child=lambda parent, shop: SocialAnalyticsFactory(social_post=parent, shop=shop),
    ),
    Relation(
        constraint="advanced_experimentresult_experiment_shop_fk",
        definition=(
            "FOREIGN KEY (experiment_id, shop_domain) REFERENCES experiments(id, shop_domain) ON DELETE CASCADE"
        ),
        child_table="experiment_results",
        parent_field="experiment",
        make_parent=lambda shop: ExperimentFactory(shop=shop),
        make_child=lambda parent, shop: ExperimentResultFactory(
            experiment=parent, shop=shop, variant_key=f"variant-{next(_variants)}"
        ),
    ),
    Relation(
        constraint="advanced_knowledgedocument_previous_shop_fk",
        definition=(
            "FOREIGN KEY (previous_version_id, shop_domain) REFERENCES knowledge_base(id, shop_domain) "
            "ON DELETE SET NULL (previous_version_id)"
        ),
        child_table="knowledge_base",
        parent_field="previous_version",
        make_parent=_document,
        make_child=_next_version,
    ),
]
CASCADES = [relation for relation in RELATIONS if relation.definition.endswith("ON DELETE CASCADE")]


@pytest.fixture
def shops(service: None) -> tuple[Shop, Shop]:
    return ShopFactory(domain=SHOP_A), ShopFactory(domain=SHOP_B)


def refused_by(build: Callable[[], object]) -> str:
    """The constraint named by the IntegrityError `build` raises (in a savepoint)."""
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        build()
    return str(getattr(getattr(excinfo.value.__cause__, "diag", None), "constraint_name", ""))


def children_of(relation: Relation, parent: models.Model) -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        column = connection.ops.quote_name(f"{relation.parent_field}_id")
        cursor.execute(
            f"SELECT id, shop_domain FROM {relation.child_table} WHERE {column} = %s ORDER BY id", [parent.pk]
        )
        return [(int(pk), str(shop)) for pk, shop in cursor.fetchall()]


@pytest.mark.django_db
@pytest.mark.parametrize("relation", RELATIONS, ids=str)
def test_composite_foreign_key_has_its_definition(relation: Relation) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
            [relation.child_table, relation.constraint],
        )
        assert cursor.fetchall() == [(relation.definition,)]


@pytest.mark.parametrize("relation", RELATIONS, ids=str)
def test_child_in_its_parents_shop_is_accepted(relation: Relation, shops: tuple[Shop, Shop]) -> None:
    shop_a, _ = shops
    parent = relation.make_parent(shop_a)
    child = relation.make_child(parent, shop_a)
    assert children_of(relation, parent) == [(child.pk, SHOP_A)]


@pytest.mark.parametrize("relation", RELATIONS, ids=str)
def test_child_in_another_shop_than_its_parent_is_rejected(relation: Relation, shops: tuple[Shop, Shop]) -> None:
    shop_a, shop_b = shops
    parent = relation.make_parent(shop_a)
    assert refused_by(lambda: relation.make_child(parent, shop_b)) == relation.constraint
    assert children_of(relation, parent) == []


@pytest.mark.parametrize("relation", RELATIONS, ids=str)
def test_moving_a_child_to_another_shop_is_rejected(relation: Relation, shops: tuple[Shop, Shop]) -> None:
    shop_a, shop_b = shops
    parent = relation.make_parent(shop_a)
    child = relation.make_child(parent, shop_a)
    move = type(child)._base_manager.filter(pk=child.pk)
    assert refused_by(lambda: move.update(shop=shop_b)) == relation.constraint
    assert children_of(relation, parent) == [(child.pk, SHOP_A)]


@pytest.mark.parametrize("relation", RELATIONS, ids=str)
def test_moving_a_parent_away_from_its_children_is_rejected(relation: Relation, shops: tuple[Shop, Shop]) -> None:
    shop_a, shop_b = shops
    parent = relation.make_parent(shop_a)
    child = relation.make_child(parent, shop_a)
    move = type(parent)._base_manager.filter(pk=parent.pk)
    assert refused_by(lambda: move.update(shop=shop_b)) == relation.constraint
    assert type(parent)._base_manager.filter(pk=parent.pk, shop=shop_a).exists()
    assert children_of(relation, parent) == [(child.pk, SHOP_A)]


def test_social_analytics_on_another_platform_than_its_post_is_rejected(shops: tuple[Shop, Shop]) -> None:
    shop_a, _ = shops
    post = SocialPostFactory(shop=shop_a, platform="instagram")
    assert (
        refused_by(lambda: SocialAnalyticsFactory(social_post=post, platform="tiktok"))
        == "growth_socialanalytics_post_shop_fk"
    )
    assert not SocialAnalytics.objects.filter(social_post=post).exists()


@pytest.mark.parametrize("relation", CASCADES, ids=str)
def test_deleting_a_parent_deletes_its_children_in_the_database(relation: Relation, shops: tuple[Shop, Shop]) -> None:
    shop_a, _ = shops
    parent, sibling = relation.make_parent(shop_a), relation.make_parent(shop_a)
    relation.make_child(parent, shop_a)
    relation.make_child(parent, shop_a)
    kept = relation.make_child(sibling, shop_a)
    assert len(children_of(relation, parent)) == 2
    # Plain SQL, so that the cascade is the database's and not Django's collector.
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {type(parent)._meta.db_table} WHERE id = %s", [parent.pk])
    assert children_of(relation, parent) == []
    assert children_of(relation, sibling) == [(kept.pk, SHOP_A)]


def test_deleting_a_previous_version_keeps_its_successor(shops: tuple[Shop, Shop]) -> None:
    shop_a, _ = shops
    old = _document(shop_a)
    new = _next_version(old, shop_a)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM knowledge_base WHERE id = %s", [old.pk])
    assert list(
        KnowledgeDocument.objects.filter(document_key="returns-policy").values_list("pk", "previous_version")
    ) == [(new.pk, None)]


@pytest.mark.parametrize(
    "relation", [r for r in RELATIONS if r.child_table in {"ad_performance", "social_analytics"}], ids=str
)
def test_a_child_naming_a_shop_that_does_not_exist_is_rejected_by_its_composite_key(
    relation: Relation, shops: tuple[Shop, Shop]
) -> None:
    # These tables keep no foreign key of their own to shops (it cost an import a quarter of
    # its time); the composite key to the parent, whose own key proves the shop, refuses it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f' "
            "AND confrelid = 'shops'::regclass",
            [relation.child_table],
        )
        assert cursor.fetchone() == (0,)
    parent = relation.make_parent(shops[0])
    child = relation.make_child(parent, shops[0])
    move = type(child)._base_manager.filter(pk=child.pk)
    assert refused_by(lambda: move.update(shop_id="nowhere.myshopify.com")) == relation.constraint
