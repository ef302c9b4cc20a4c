"""The AI knowledge base, in named parts:

- `versioning`: save, revise and delete documents as versions, each with its embedding;
- `search`: semantic, keyword and hybrid search (`knowledge_search`);
- `index`: the IVFFlat index's state, search settings, break-even and rebuild;
- `reembed`: moving stored documents to the configured embedding model and language;
- `refine`: the second tier, all-MiniLM-L6-v2 vectors computed in the background.
"""

from .errors import EmbeddingUnavailable as EmbeddingUnavailable
from .errors import KnowledgeConflict as KnowledgeConflict
from .index import INDEX_NAME as INDEX_NAME
from .index import IVFFLAT_DEFAULT_LISTS as IVFFLAT_DEFAULT_LISTS
from .index import IVFFLAT_MAX_LISTS as IVFFLAT_MAX_LISTS
from .index import IVFFLAT_MIN_LISTS as IVFFLAT_MIN_LISTS
from .index import IndexRebuild as IndexRebuild
from .index import IvfflatIndexState as IvfflatIndexState
from .index import build_maintenance_work_mem as build_maintenance_work_mem
from .index import exact_search_limit as exact_search_limit
from .index import index_is_fitted as index_is_fitted
from .index import ivfflat_build_memory_mb as ivfflat_build_memory_mb
from .index import ivfflat_index_state as ivfflat_index_state
from .index import ivfflat_search_settings as ivfflat_search_settings
from .index import knowledge_index_rebuild as knowledge_index_rebuild
from .index import recommended_lists as recommended_lists
from .index import recommended_probes as recommended_probes
from .index import search_probes as search_probes
from .reembed import ReembedBatch as ReembedBatch
from .reembed import knowledge_reembed as knowledge_reembed
from .reembed import knowledge_reembed_batch as knowledge_reembed_batch
from .reembed import reembed_pending as reembed_pending
from .refine import RefineBatch as RefineBatch
from .refine import knowledge_refine as knowledge_refine
from .refine import knowledge_refine_batch as knowledge_refine_batch
from .refine import refine_pending as refine_pending
from .search import MAX_K as MAX_K
from .search import SEARCH_MODES as SEARCH_MODES
from .search import KnowledgeSearchHit as KnowledgeSearchHit
from .search import KnowledgeSearchResult as KnowledgeSearchResult
from .search import knowledge_search as knowledge_search
from .search import reciprocal_rank_fusion as reciprocal_rank_fusion
from .versioning import CLIENT_EMBEDDING_MODEL as CLIENT_EMBEDDING_MODEL
from .versioning import knowledge_document_delete as knowledge_document_delete
from .versioning import knowledge_document_revise as knowledge_document_revise
from .versioning import knowledge_document_save as knowledge_document_save
