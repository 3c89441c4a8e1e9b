//! The phrase tables of the offline classifier: one [`Rule`] per definition clause, and the
//! context words its guards look for. Kept apart from the matching code so a support lead can
//! read and extend them without reading Rust.
//!
//! Every phrase is written in the matching form (`super::words`): lowercase, apostrophes
//! dropped (`cant`, `wont`, `quelquun`), any other punctuation a space, accents kept
//! (`données`, `kündigen`). A test checks each phrase is already in that form. A phrase word
//! also matches the same word with one trailing `s` (`lawyer` matches `lawyers`,
//! `another company` matches `another company’s`).
//!
//! Over 450 lines: it is data, the phrase tables of every definition clause in several languages,
//! with the guards that switch phrases off.

use crate::domain::{Severity, clause::Clause};

/// The phrase rule of billing disputes: it fires on the dispute, and the amount then decides
/// between the two billing clauses (urgent, [`Clause::BillingDisputeUpTo1000`], unless an
/// amount over $1,000 makes it [`Clause::BillingDisputeOver1000`]).
pub(super) const BILLING_DISPUTE: &str = "Billing dispute";

/// The phrase rule of a customer chasing an unanswered ticket (`third message`): the words of
/// [`Clause::RepeatTicket`]; the clause's own name is the rule that counts the customer's
/// other tickets.
pub(super) const REPEAT_PHRASES: &str = "Repeat ticket within 24 h";

/// What may switch a phrase hit off (see `super::guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// A negation just before the phrase in the same clause of the sentence: `not an outage`,
    /// `no data loss`, `no longer charged twice`, `nicht`, `pas`, `sin`.
    Negated,
    /// A conditional just before it: `what happens if the API is down`.
    Hypothetical,
    /// The sentence says it is over: `resolved`, `fixed`, `working again`, `postmortem`.
    Resolved,
    /// The sentence is about a planned or a past event: `planned maintenance`, `next week`,
    /// `yesterday's outage`, unless it also says it is ongoing (`still`, `again`, `since`).
    PastOrPlanned,
    /// The sentence limits it to one user or browser: `only for me in Safari`.
    SingleUser,
    /// The ticket asks for a document (a noun of [`DOCUMENTS`] with a verb of
    /// [`DOCUMENT_REQUESTS`] in one sentence): paperwork, not an incident.
    DocumentRequest,
    /// The word names a feature, setting or team: `Security settings`, `our Legal team`.
    FeatureName,
    /// The customer did it themselves: `I deleted … by mistake`.
    SelfInflicted,
    /// The object is not the subscription: `cancel a pending invite`, `refund policy`.
    OtherObject,
    /// The ask is for later: `a call next week`, `no rush`.
    NotNow,
    /// The sentence asks how to do something or where something is (`how do I…`, `where
    /// does…`, `how long are deleted items kept?`): a question about the product, not a report
    /// of an incident, unless it also says the trouble is ongoing (`still`, `right now`).
    HowTo,
    /// The sentence asks for a feature (`feature idea: a banner when a dashboard is
    /// unavailable`): it describes what should happen, not what happened.
    FeatureAsk,
    /// The subject is the customer's own system (`our office network is down`).
    OwnSystem,
    /// The phrase names a kind of thing, modifying the noun after it (`data loss prevention
    /// tool`, `vulnerability disclosure policy`, `outage alerts`).
    Modifier,
    /// The phrase is looked for or prevented, not found (`check your login page for XSS`,
    /// `prevent data loss`).
    Intensional,
}

/// One definition clause as phrases (named by `crate::domain::clause`, or by one of the rule
/// names above).
#[derive(Debug)]
pub(super) struct Rule {
    /// The severity it decides.
    pub severity: Severity,
    /// Shown in reasoning and `--explain`.
    pub name: &'static str,
    /// Phrases that fire unless a guard of `guards` applies.
    pub firm: &'static [&'static str],
    /// Phrases that are ambiguous on their own: they fire when one of `confirm` is in the ticket,
    /// else the nearest labelled examples decide (`super::OfflineClassifier::explain`).
    pub weak: &'static [&'static str],
    /// Context that makes a weak phrase firm (`everyone`, `right now`).
    pub confirm: &'static [&'static str],
    /// The guards checked for every hit, firm or weak.
    pub guards: &'static [Guard],
    /// Guards checked for weak hits and for the phrases listed in `guarded`.
    pub weak_guards: &'static [Guard],
    /// More firm phrases, checked after `firm`, that `weak_guards` also apply to (each phrase
    /// is listed once, in `firm` or here).
    pub guarded: &'static [&'static str],
}

impl Rule {
    /// Every firm phrase in matching order, with whether `weak_guards` apply to it.
    pub(super) fn firm_phrases(&self) -> impl Iterator<Item = (&'static str, bool)> {
        let firm = self.firm.iter().map(|p| (*p, false));
        firm.chain(self.guarded.iter().map(|p| (*p, true)))
    }
}

use Guard::*;

/// The clauses in definition order (on_fire first; the highest severity wins).
pub(super) const CLAUSES: &[Rule] = &[
    Rule {
        severity: Severity::OnFire,
        name: Clause::ProductionDown.name(),
        firm: &[
            "outage",
            "outages",
            "production down",
            "prod down",
            "site down",
            "is down",
            "are down",
            "went down",
            "goes down",
            "down again",
            "down for everyone",
            "down for",
            "downtime",
            "returns http 500",
            "returning 500",
            "500s",
            "http 500",
            "http 502",
            "http 503",
            "error 500",
            "500 error",
            "503",
            "504",
            "stopped firing",
            "stopped working",
            "completely stopped",
            "nothing has run",
            "stuck in queued",
            "nothing is reaching",
            "nobody can log in",
            "no one can log in",
            "is unusable",
            "not responding",
            "isnt responding",
            "throws on init",
            "losing orders",
            "losing sales",
            // de
            "ausfall",
            "nicht erreichbar",
            "funktioniert nichts",
            "geht nichts",
            "niemand mehr anmelden",
            "nicht mehr anmelden",
            // es
            "caída",
            "caído",
            "caida",
            "caido",
            "fuera de servicio",
            "está parada",
            "está parado",
            // fr
            "panne",
            "ne fonctionne plus",
            "ne marche plus",
            "hors service",
            "inaccessible",
        ],
        weak: &[
            "wont load",
            "not loading",
            "doesnt load",
            "does not load",
            "time out",
            "times out",
            "timed out",
            "renders an empty",
            "blank",
            "crash",
            "crashes",
            "crashing",
            "crashed",
            "can sign in",
            "can log in",
            "can login",
            // One person locked out is an account problem; with `everyone`, `our team` or
            // `customers` it is an outage.
            "cant log in",
            "cannot log in",
            "cant sign in",
            "cannot sign in",
            "cant login",
            "cannot login",
            "fails",
            "failing",
            "funktioniert nicht",
            "no funciona",
            "no responde",
            "ne fonctionne pas",
            "ne marche pas",
        ],
        confirm: &[
            "everyone",
            "everybody",
            "staff",
            "employees",
            "all our",
            "all of us",
            "whole company",
            "entire company",
            "nobody",
            "no one",
            "whole team",
            "entire team",
            "our team",
            "all users",
            "customers",
            "visitors",
            "production",
            "prod",
            "checkout",
            "orders",
            "right now",
            "todos",
            "todas",
            "nadie",
            "clientes",
            "producción",
            "alle",
            "ganzes team",
            "kunden",
            "produktion",
            "tout le monde",
            "toute léquipe",
            "personne",
            "clients",
        ],
        guards: &[
            Negated,
            Hypothetical,
            Resolved,
            PastOrPlanned,
            SingleUser,
            HowTo,
            FeatureAsk,
            OwnSystem,
            Modifier,
            Intensional,
        ],
        weak_guards: &[],
        guarded: &[],
    },
    Rule {
        severity: Severity::OnFire,
        name: Clause::DataLoss.name(),
        firm: &[
            "data loss",
            "lost data",
            "lost all",
            "overwrote",
            "overwritten",
            "disappeared",
            "history is gone",
            "data is gone",
            "records are gone",
            "gone from",
            "corrupted",
            "missing after",
            "shows zero",
            "show zero",
            "showing zero",
            // de
            "datenverlust",
            "daten verloren",
            "daten weg",
            "sind leer",
            // es
            "se perdieron",
            "datos perdidos",
            "desaparecieron",
            // fr
            "perte de données",
            "perdu toutes",
            "perdu nos",
            "perdu les",
            "données perdues",
            "ont disparu",
            "disparu",
        ],
        weak: &["perdimos", "is gone", "is missing", "fehlen"],
        confirm: &[
            "data",
            "event",
            "events",
            "record",
            "records",
            "contacts",
            "history",
            "dashboards",
            "datos",
            "daten",
            "données",
            "backup",
        ],
        guards: &[
            Negated,
            Hypothetical,
            Resolved,
            HowTo,
            FeatureAsk,
            Modifier,
            Intensional,
        ],
        weak_guards: &[SelfInflicted],
        guarded: &[
            "wiped",
            "deleted",
            "gelöscht",
            "supprimé",
            "supprimées",
            "supprimés",
            "borrados",
        ],
    },
    Rule {
        severity: Severity::OnFire,
        name: Clause::SecurityReport.name(),
        firm: &[
            "vulnerability",
            "vulnerable",
            "xss",
            "script tag",
            "exposed",
            "leaked",
            "leak",
            "tenant isolation",
            "suspicious login",
            "logins to our",
            "public repo",
            "compromised",
            "unauthorized access",
            "unauthorised access",
            "hacked",
            "phishing",
            "account takeover",
            "sql injection",
            "open redirect",
            "csrf",
            "key is visible",
            // Credentials where they should never be.
            "password in your logs",
            "password in the logs",
            "password shows up in",
            "password appears in",
            "password is visible",
            "key in the url",
            "key in your logs",
            "key in the logs",
            "none of us invited",
            "thats not us",
            "that is not us",
            "isnt us",
            "we didnt make",
            "we didnt create",
            "security hole",
            "responsible disclosure",
            "security bug",
            "security problem",
            "security vulnerability",
            // de, es, fr
            "sicherheitslücke",
            "datenleck",
            "brecha de seguridad",
            "fuga de datos",
            "fuite de données",
        ],
        weak: &[
            "security",
            "sécurité",
            "seguridad",
            "sicherheit",
            "unauthorized",
            "unauthorised",
        ],
        confirm: &[],
        guards: &[Negated, HowTo, FeatureAsk, Modifier, Intensional],
        weak_guards: &[DocumentRequest, FeatureName],
        guarded: &["security incident", "security issue", "security breach"],
    },
    Rule {
        severity: Severity::OnFire,
        name: Clause::LegalLanguage.name(),
        firm: &[
            "lawsuit",
            "legal action",
            "legal actions",
            "legal steps",
            "legal matter",
            "legal proceedings",
            "legal consequences",
            "court",
            "litigation",
            "subpoena",
            "breach of contract",
            "cease and desist",
            "formal notice",
            "damages",
            "gdpr breach",
            "gdpr violation",
            "violates gdpr",
            "violation of our dpa",
            "dpa violation",
            // es
            "abogada",
            "acciones legales",
            "acción legal",
            "demanda judicial",
            // de
            "anwältin",
            "rechtsanwalt",
            "klage",
            "gericht",
            "rechtliche schritte",
            // fr
            "avocate",
            "poursuites",
            "rupture de contrat",
            "mise en demeure",
            "tribunal",
        ],
        weak: &["gdpr", "dpa", "legal"],
        confirm: &[],
        guards: &[Negated, HowTo, FeatureAsk, Modifier, Intensional],
        weak_guards: &[DocumentRequest, FeatureName],
        guarded: &[
            "lawyer", "attorney", "counsel", "abogado", "anwalt", "avocat",
        ],
    },
    Rule {
        severity: Severity::OnFire,
        name: Clause::NeedAHumanNow.name(),
        firm: &[
            "human now",
            "person right now",
            "manager now",
            "escalate this",
            "escalate immediately",
            "on the phone with me",
        ],
        weak: &[
            "real person",
            "actual person",
            "a human",
            "human being",
            "speak to someone",
            "talk to someone",
            "speak to a person",
            "talk to a person",
            "call me",
            "an engineer",
            "vraie personne",
            "une personne",
            "einen menschen",
            "echten menschen",
        ],
        confirm: &[
            "now",
            "immediately",
            "right away",
            "asap",
            "urgent",
            "urgently",
            "minutes",
            "in an hour",
            "not a bot",
            "not the bot",
            "no bot",
            "automated answer",
            "canned answers",
            "tout de suite",
            "immédiatement",
            "pas à un robot",
            "sofort",
            "dringend",
        ],
        guards: &[Negated, Hypothetical, HowTo],
        weak_guards: &[NotNow],
        guarded: &["someone on the phone", "on a call with me"],
    },
    Rule {
        severity: Severity::Urgent,
        name: Clause::ChurnRisk.name(),
        firm: &[
            "moving off",
            "move off",
            "leave your platform",
            "worth keeping",
            "worth staying",
            "churn",
            "terminate our",
            "switching away",
            "look elsewhere",
            "looking at other options",
            "other options",
            "close the workspace",
            "close our workspace",
            "close our account",
            "consolidate tools",
            "cant justify",
            "review alternatives",
            "reviewing alternatives",
            "evaluating alternatives",
            "looking at alternatives",
            "considering alternatives",
            "delete my account",
            "delete our account",
            "close my account",
            "dont use it anymore",
            "changer doutil",
            "changer de solution",
            "changer de fournisseur",
            "cambiar de herramienta",
            "otra herramienta",
            "anbieter wechseln",
            // de, fr, es
            "kündigen",
            "kündigung",
            "zu wechseln",
            "résilier",
            "résiliation",
            "dar de baja",
            "darnos de baja",
        ],
        weak: &[],
        confirm: &[],
        guards: &[Negated],
        weak_guards: &[OtherObject],
        guarded: &[
            "cancel",
            "cancelling",
            "canceling",
            "cancellation",
            "cancelar",
            "annuler",
        ],
    },
    Rule {
        severity: Severity::Urgent,
        name: BILLING_DISPUTE,
        firm: &[
            "refunded",
            "charged twice",
            "double charged",
            "duplicate charge",
            "overcharge",
            "overcharged",
            "dispute",
            "disputing",
            "wrong invoice",
            "invoice is wrong",
            "reverse",
            "reversed",
            "credited",
            "still billed",
            "still charged",
            "still got charged",
            "charged after",
            "charged us",
            "charged me",
            "you charged",
            "billed us",
            "bills us",
            "were billed",
            "was billed",
            "got billed for",
            "in error",
            "never ordered",
            "never made",
            "never happened",
            "nobody on our team approved",
            "nobody approved",
            "didnt approve",
            "doesnt match our quote",
            "correct it",
            "reissue",
            "paid twice",
            "hit three times",
            // es
            "devolución",
            "cobro duplicado",
            "nos cobraron",
            "cobraron",
            // de
            "erstatten",
            "erstattung",
            "doppelt belastet",
            "abgebucht",
            // fr
            "rembourser",
            "facture erronée",
        ],
        weak: &[],
        confirm: &[],
        guards: &[Negated, Resolved],
        weak_guards: &[OtherObject],
        guarded: &["refund", "reembolso", "remboursement", "rückerstattung"],
    },
    Rule {
        severity: Severity::Urgent,
        name: REPEAT_PHRASES,
        firm: &[
            "third message",
            "third time",
            "second time asking",
            "second message",
            "following up again",
            "follow up again",
            "earlier today",
            "this morning and",
            "still havent heard",
            "no reply",
            "nobody answered",
            "no one answered",
            "nobody has replied",
            "still no reply",
            "still waiting",
            "re re",
            "writing again",
            "no response yet",
            "following up on my",
            "wrote u",
            "wrote you",
            "i wrote in",
            // de, es, fr
            "zum zweiten mal",
            "zweite nachricht",
            "noch keine antwort",
            "segunda vez",
            "tercera vez",
            "sin respuesta",
            "nadie me responde",
            "deuxième fois",
            "toujours pas de réponse",
            "troisième réponse",
        ],
        weak: &[],
        confirm: &[],
        guards: &[],
        weak_guards: &[],
        guarded: &[],
    },
];

/// One list of phrases, named for reports.
pub(super) struct List {
    /// `Production down: firm`, `NEGATORS`.
    pub name: String,
    /// Its phrases.
    pub phrases: &'static [&'static str],
    /// It raises a severity (a clause's phrases, competitors, the charge words); else it
    /// lowers one or stops one from rising (the guards' words, the rates of the amount rule).
    pub raises: bool,
}

/// Every list of phrases that decides a severity or guards one: what `super::contamination`
/// looks for in a holdout. The pairs of [`PAIRS`] are looked for as pairs; the topic and tone
/// lists decide no severity.
pub(super) fn lists() -> Vec<List> {
    let list = |name: String, phrases: &'static [&'static str], raises: bool| List {
        name,
        phrases,
        raises,
    };
    let mut out = Vec::new();
    for c in CLAUSES {
        out.push(list(format!("{}: firm", c.name), c.firm, true));
        out.push(list(format!("{}: firm, guarded", c.name), c.guarded, true));
        out.push(list(format!("{}: ambiguous", c.name), c.weak, true));
        out.push(list(format!("{}: confirms", c.name), c.confirm, true));
    }
    let raising: [(&str, &'static [&'static str]); 5] = [
        ("COMPETITORS", COMPETITORS),
        ("FRUSTRATION", FRUSTRATION),
        ("ACCESS", ACCESS),
        ("CHARGE_WORDS", CHARGE_WORDS),
        ("AGENTS", AGENTS),
    ];
    out.extend(
        raising
            .into_iter()
            .map(|(n, l)| list(n.to_owned(), l, true)),
    );
    let lowering: [(&str, &'static [&'static str]); 31] = [
        ("RATE_UNITS", RATE_UNITS),
        ("PER", PER),
        ("RATES", RATES),
        ("CONTRACT_NOUNS", CONTRACT_NOUNS),
        ("NEGATORS", NEGATORS),
        ("NOT_NEGATING", NOT_NEGATING),
        ("CONDITIONALS", CONDITIONALS),
        ("RESOLVED", RESOLVED),
        ("PAST_OR_PLANNED", PAST_OR_PLANNED),
        ("TIME_UNITS", TIME_UNITS),
        ("CLAUSE_BREAKS", CLAUSE_BREAKS),
        ("NAME_CUES", NAME_CUES),
        ("MENTION_CUES", MENTION_CUES),
        ("FILLERS", FILLERS),
        ("HOW_TO", HOW_TO),
        ("FEATURE_ASKS", FEATURE_ASKS),
        ("ONGOING", ONGOING),
        ("SINGLE_USER", SINGLE_USER),
        ("DOCUMENTS", DOCUMENTS),
        ("DOCUMENT_REQUESTS", DOCUMENT_REQUESTS),
        ("FEATURE_NOUNS", FEATURE_NOUNS),
        ("DELETIONS", DELETIONS),
        ("SELF_INFLICTED_BEFORE", SELF_INFLICTED_BEFORE),
        ("SELF_INFLICTED", SELF_INFLICTED),
        ("OTHER_OBJECTS", OTHER_OBJECTS),
        ("LATER", LATER),
        ("BOILERPLATE", BOILERPLATE),
        ("OWN_SYSTEMS", OWN_SYSTEMS),
        ("MODIFIED_HEADS", MODIFIED_HEADS),
        ("SEARCH_VERBS", SEARCH_VERBS),
        ("PREVENT", PREVENT),
    ];
    out.extend(
        lowering
            .into_iter()
            .map(|(n, l)| list(n.to_owned(), l, false)),
    );
    out
}

/// A clause-level rule: a phrase of `first`, then within `gap` words in the same clause (see
/// `super::doc::Sentence::same_clause`) a phrase of `then`, where a single phrase would be
/// too weak or a list of every wording too long: `we won't be renewing`, `moving to Amplitude`,
/// `other tenants' files`. The pair belongs to a clause of [`CLAUSES`] (its severity and guards
/// apply, checked before the pair's first word).
#[derive(Debug)]
pub(super) struct Pair {
    /// The name of the rule of [`CLAUSES`] it belongs to.
    pub clause: &'static str,
    /// The first part (`won't`, `moving to`, `another`).
    pub first: &'static [&'static str],
    /// The second part (`renew`, a competitor, `company`).
    pub then: &'static [&'static str],
    /// Most words between the two.
    pub gap: usize,
    /// When not empty, one of these must be in the same sentence (`see`, `access`: another
    /// company's data *in sight*, not a customer who moved to a different company).
    pub context: &'static [&'static str],
}

/// The clause-level rules.
pub(super) const PAIRS: &[Pair] = &[
    // A threat to sue needs someone who sues: `we will sue`, `our client is suing`, never
    // `Sue from Brightline` or `the tennis court`.
    Pair {
        clause: Clause::LegalLanguage.name(),
        first: AGENTS,
        then: &["sue", "suing"],
        gap: 3,
        context: &[],
    },
    // A renewal that will not happen, however it is worded: `we won't renew`, `we won't be
    // renewing`, `we are not going to renew`.
    Pair {
        clause: Clause::ChurnRisk.name(),
        first: &["not", "wont", "never"],
        then: &["renew", "renewing"],
        gap: 2,
        context: &[],
    },
    // Leaving for a named competitor: `moving to Amplitude next month`.
    Pair {
        clause: Clause::ChurnRisk.name(),
        first: &[
            "moving to",
            "move to",
            "switching to",
            "switch to",
            "migrating to",
            "migrate to",
            "going with",
        ],
        then: COMPETITORS,
        gap: 1,
        context: &[],
    },
    // Another tenant's data in sight: `I can see another company's data`, `download other
    // tenants' files`.
    Pair {
        clause: Clause::SecurityReport.name(),
        first: &["another", "other", "different"],
        then: &[
            "company",
            "customer",
            "tenant",
            "organisation",
            "organization",
        ],
        gap: 1,
        context: ACCESS,
    },
    // Every request failing: `every call returns 500`, `todas las peticiones devuelven error`.
    Pair {
        clause: Clause::ProductionDown.name(),
        first: &["every", "todas"],
        then: &["request", "call", "peticiones"],
        gap: 1,
        context: &[],
    },
    // An invoice said to be wrong: `the invoice shows the wrong seat count`.
    Pair {
        clause: BILLING_DISPUTE,
        first: &["invoice", "bill"],
        then: &["wrong", "incorrect"],
        gap: 2,
        context: &[],
    },
];

/// Who can take legal action: the customer, their company or their lawyers (`we`, `I'll`,
/// `our client`).
pub(super) const AGENTS: &[&str] = &[
    "we", "i", "well", "ill", "were", "im", "weve", "ive", "our", "my", "client", "company", "they",
];

/// Verbs and words that put data in sight (for another tenant's data).
pub(super) const ACCESS: &[&str] = &[
    "see", "seeing", "saw", "access", "accessed", "view", "open", "opened", "read", "shows",
    "showing", "visible", "belong",
];

/// Words of a sentence that speaks of a charge: the amounts there are the ones a billing
/// dispute can be about (`super::amounts::disputed`).
pub(super) const CHARGE_WORDS: &[&str] = &[
    "charge",
    "charged",
    "charging",
    "bill",
    "billed",
    "invoice",
    "invoiced",
    "refund",
    "refunded",
    "card",
    "paid",
    "debited",
    "fee",
    "overcharge",
    "overcharged",
    // es, de, fr
    "cobro",
    "cobraron",
    "cobrado",
    "factura",
    "reembolso",
    "abgebucht",
    "belastet",
    "rechnung",
    "erstatten",
    "facture",
    "facturé",
    "prélevé",
    "remboursement",
    "rembourser",
];

/// Units that make an amount a rate after `/`, `a`, `per` (`$12,000/yr`, `$40 per seat`).
pub(super) const RATE_UNITS: &[&str] = &["yr", "year", "mo", "month", "annum", "seat", "user"];

/// Words linking an amount to a [`RATE_UNITS`] word.
pub(super) const PER: &[&str] = &["a", "an", "per", "every", "each"];

/// Words that make the amount before them a rate on their own (`$899 each`, `$12k annually`).
pub(super) const RATES: &[&str] = &["each", "annually", "yearly", "monthly", "annual"];

/// Words that make the amount before them the size of a contract (`a $12,000 plan`).
pub(super) const CONTRACT_NOUNS: &[&str] =
    &["plan", "contract", "subscription", "deal", "budget", "arr"];

/// Competitor names; they count only with frustration language (see [`FRUSTRATION`]).
pub(super) const COMPETITORS: &[&str] = &[
    "mixpanel",
    "amplitude",
    "segment",
    "intercom",
    "zendesk",
    "heap",
    "posthog",
    "looker",
    "tableau",
    "freshdesk",
    "pendo",
    "fullstory",
    "datadog",
];

/// Frustration language that turns a named competitor into an urgent signal.
pub(super) const FRUSTRATION: &[&str] = &[
    "frustrating",
    "frustrated",
    "fed up",
    "ugh",
    "just works",
    "never had this problem",
    "handles this fine",
    "fine out of the box",
    "evaluating",
    "switching to",
    "why we switched",
    "sick of",
    "tired of",
    "annoying",
    "ridiculous",
    "unacceptable",
    "does this better",
    "much better",
    "why are we paying",
    "nervt",
    "frustrierend",
    "harto",
    "marre",
];

/// Words that, just before a phrase, negate it.
pub(super) const NEGATORS: &[&str] = &[
    "not", "no", "never", "nothing", "without", "isnt", "arent", "wasnt", "werent", "dont",
    "doesnt", "didnt", "havent", "hasnt", "wont", "cant", "cannot", "couldnt", "wouldnt",
    "shouldnt", "nicht", "kein", "keine", "keinen", "pas", "jamais", "aucun", "aucune", "sin",
    "ningún", "ninguna",
];

/// A negator followed by one of these is no negation (`not only`, `not sure if`).
pub(super) const NOT_NEGATING: &[&str] = &["only", "just", "sure", "even"];

/// Conditionals that make an incident hypothetical when they come just before it.
pub(super) const CONDITIONALS: &[&str] = &[
    "if",
    "whenever",
    "in case",
    "whether",
    "would",
    "what happens",
    "in the event",
    "falls",
    "au cas",
];

/// The sentence says the incident is over.
pub(super) const RESOLVED: &[&str] = &[
    "resolved",
    "was refunded",
    "were refunded",
    "been refunded",
    "fixed",
    "fine now",
    "fine since",
    "working again",
    "works again",
    "back up",
    "back to normal",
    "no longer",
    "is back",
    "are back",
    "restored",
    "recovered",
    "quick fix",
    "postmortem",
    "post mortem",
    "rca",
    "root cause",
    "incident report",
    "behoben",
    "resuelto",
    "résolu",
];

/// The sentence is about a planned or a past event (so is `next` or `last` with a word of
/// [`TIME_UNITS`]: `next Tuesday`, `last week`).
pub(super) const PAST_OR_PLANNED: &[&str] = &[
    "planned",
    "scheduled",
    "maintenance",
    "upcoming",
    "will there be",
    "any downtime",
    "in advance",
];

/// Words that end a clause: a negation, a subject or a condition before them does not reach a
/// phrase after them (`we can't believe it, but the data is gone`: the data is gone).
pub(super) const CLAUSE_BREAKS: &[&str] = &[
    "and", "but", "because", "so", "that", "which", "who", "although", "while", "y", "pero",
    "porque", "und", "aber", "dass", "et", "mais", "parce",
];

/// Words just before a name (`this is Sue`, `my colleague Court`, `thanks, Sue`).
pub(super) const NAME_CUES: &[&str] = &[
    "this is",
    "im",
    "i am",
    "name is",
    "colleague",
    "coworker",
    "teammate",
    "manager",
    "customer",
    "client",
    "ask",
    "cc",
    "dear",
    "hi",
    "hello",
    "hey",
    "thanks",
    "regards",
    "cheers",
    "mr",
    "mrs",
    "ms",
    "dr",
    "with",
    "and",
    "named",
    "called",
];

/// Words that announce a quotation as a mention (`the word "lawsuit"`, `a field called
/// "court"`): the quoted words are talked about, not said.
pub(super) const MENTION_CUES: &[&str] = &[
    "word", "words", "phrase", "term", "text", "wording", "string", "label", "tag", "title",
    "named", "called", "column", "field", "keyword", "heading",
];

/// Units of time that `next` or `last` make a planned or past event (`next Tuesday`).
pub(super) const TIME_UNITS: &[&str] = &[
    "week",
    "weekend",
    "month",
    "quarter",
    "year",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Words a question may open with before its question word (`hi, quick question: how do…`).
pub(super) const FILLERS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hola",
    "hallo",
    "bonjour",
    "quick",
    "question",
    "q",
    "also",
    "and",
    "so",
    "btw",
    "ok",
    "okay",
    "sorry",
    "there",
    "support",
    "guys",
    "team",
    "one",
    "more",
    "please",
    "pls",
    "just",
    "wondering",
];

/// How a question about the product opens (`how do I…`, `where does…`, `is there a way…`).
pub(super) const HOW_TO: &[&str] = &[
    "can i",
    "can we",
    "could i",
    "could we",
    "how do",
    "how does",
    "how can",
    "how could",
    "how to",
    "how long",
    "how often",
    "how much",
    "how many",
    "how would",
    "where do",
    "where does",
    "where can",
    "where is",
    "where are",
    "where should",
    "is there a way",
    "is there an option",
    "is there a setting",
    "is it possible",
    "do you have",
    "do you support",
    "do you offer",
    "does your",
    "whats the best way",
    "what is the best way",
    // es, de, fr
    "cómo",
    "como",
    "dónde",
    "donde",
    "wie",
    "wo",
    "comment",
    "où",
];

/// A sentence that asks for a feature.
pub(super) const FEATURE_ASKS: &[&str] = &[
    "feature request",
    "small idea",
    "would be great",
    "would be nice",
    "would love",
    "please add",
    "could you add",
    "can you add",
    "any plans",
    "any chance",
    "on the roadmap",
    "suggestion",
    "sugerencia",
];

/// The customer's own systems, as the subject of a failure (`our office network is down`).
pub(super) const OWN_SYSTEMS: &[&str] = &[
    "our own",
    "my own",
    "our office",
    "office network",
    "our network",
    "my network",
    "our internet",
    "my internet",
    "our wifi",
    "my wifi",
    "our vpn",
    "my laptop",
    "my computer",
];

/// Nouns a trigger phrase can modify, naming a kind of thing rather than an event (`data loss
/// prevention tool`, `vulnerability disclosure policy`, `outage alerts`, `damages column`).
pub(super) const MODIFIED_HEADS: &[&str] = &[
    "policy",
    "policies",
    "process",
    "program",
    "programme",
    "training",
    "drill",
    "prevention",
    "scanner",
    "settings",
    "page",
    "tool",
    "column",
    "field",
    "tag",
    "alert",
    "alerts",
    "notification",
    "notifications",
    "history",
    "checklist",
    "template",
    "runbook",
];

/// Verbs that look for something (`check … for XSS`): what they look for is not found yet.
pub(super) const SEARCH_VERBS: &[&str] = &[
    "check",
    "checking",
    "test",
    "scan",
    "scanning",
    "look",
    "looking",
    "search",
    "searching",
    "audit",
    "probe",
    "protect",
    "protected",
    "monitor",
    "monitoring",
];

/// Words that prevent what follows (`prevent data loss`).
pub(super) const PREVENT: &[&str] = &["prevent", "prevents", "preventing", "verhindern"];

/// Words that say it is happening now, overriding [`PAST_OR_PLANNED`] and [`RESOLVED`].
pub(super) const ONGOING: &[&str] = &[
    "still",
    "right now",
    "currently",
    "at the moment",
    "since",
    "seit",
    "desde",
    "depuis",
];

/// The sentence limits a failure to one user or browser.
pub(super) const SINGLE_USER: &[&str] = &[
    "only for me",
    "for me only",
    "just me",
    "just for me",
    "only me",
    "only in safari",
    "only in chrome",
    "only in firefox",
    "only in edge",
    "works fine in",
    "works in chrome",
    "other browsers",
    "on my laptop",
    "my phone",
    "on my machine",
];

/// Documents a customer asks for (with a verb of [`DOCUMENT_REQUESTS`] in the same sentence).
pub(super) const DOCUMENTS: &[&str] = &[
    "soc 2",
    "soc2",
    "soc",
    "iso 27001",
    "pen test",
    "pentest",
    "whitepaper",
    "white paper",
    "questionnaire",
    "policy",
    "policies",
    "certificate",
    "certification",
    "dpa",
    "msa",
    "nda",
    "contract",
    "agreement",
    "addendum",
    "subprocessors",
    "subprocessor",
    "doc link",
    "docs",
    "link",
    "summary",
    "attestation",
    "copy",
    "report",
];

/// Verbs and phrasings of a request for a document.
pub(super) const DOCUMENT_REQUESTS: &[&str] = &[
    "send",
    "share",
    "need",
    "needs",
    "could you",
    "can you",
    "could we",
    "do you have",
    "where",
    "review",
    "countersign",
    "sign",
    "fill",
    "attached",
    "asks for",
    "asked for",
    "request",
];

/// Nouns that, right after `security` or `legal` (or right before), make it a feature, setting
/// or team rather than a report or a threat.
pub(super) const FEATURE_NOUNS: &[&str] = &[
    "settings",
    "setting",
    "tab",
    "page",
    "section",
    "panel",
    "menu",
    "feature",
    "features",
    "toggle",
    "team",
    "teams",
    "people",
    "review",
    "reviews",
    "questionnaire",
    "whitepaper",
    "policy",
    "report",
    "requirements",
    "standards",
    "officer",
    "audit",
    "certifications",
    "compliance",
    "options",
    "group",
    "workspace",
    "entity",
    "hold",
    "practices",
    "question",
    "contact",
];

/// Deletion words whose subject [`SELF_INFLICTED_BEFORE`] may be.
pub(super) const DELETIONS: &[&str] = &["deleted", "wiped", "gelöscht", "supprimé", "borré"];

/// Words just before `deleted` that make it the customer's own doing (`I deleted`).
pub(super) const SELF_INFLICTED_BEFORE: &[&str] = &[
    "i",
    "we",
    "ive",
    "weve",
    "teammate",
    "colleague",
    "accidentally",
];

/// Words anywhere in the sentence that make a deletion the customer's own doing.
pub(super) const SELF_INFLICTED: &[&str] = &[
    "on purpose",
    "intentionally",
    "by mistake",
    "by accident",
    "accidentally",
    "versehentlich",
    "par erreur",
    "por error",
    "sin querer",
];

/// Objects of `cancel` or `refund` that are not the subscription (`cancel a pending invite`,
/// `refund policy`).
pub(super) const OTHER_OBJECTS: &[&str] = &[
    "invite",
    "invites",
    "invitation",
    "export",
    "exports",
    "run",
    "runs",
    "job",
    "jobs",
    "pipeline",
    "sync",
    "schedule",
    "scheduled",
    "meeting",
    "call",
    "demo",
    "upload",
    "report",
    "email",
    "alert",
    "notification",
    "policy",
    "policies",
];

/// The ask is for later (a sales call next week), not now.
pub(super) const LATER: &[&str] = &[
    "next week",
    "next month",
    "tomorrow",
    "later",
    "sometime",
    "no rush",
    "when you have time",
    "at your convenience",
    "next quarter",
    "in future",
    "in the future",
];

/// Sentences that are email boilerplate (confidentiality notices): left out of matching.
pub(super) const BOILERPLATE: &[&str] = &[
    "confidential",
    "privileged",
    "intended recipient",
    "received it in error",
    "received this in error",
    "received this email in error",
    "received this e mail in error",
    "prohibited",
];

/// Words left out of the nearest-example similarity (greetings and the commonest function words
/// of the languages tickets come in).
pub(super) const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "to", "of", "in", "on", "for", "with", "is", "are",
    "was", "were", "be", "it", "its", "this", "that", "we", "our", "us", "i", "my", "me", "you",
    "your", "can", "do", "does", "how", "what", "at", "from", "by", "as", "have", "has", "just",
    "there", "any", "so", "if", "not", "no", "get", "all", "about", "would", "could", "should",
    "im", "they", "hi", "hello", "hey", "thanks", "thank", "regards", "best", "cheers", "team",
    "please", "que", "los", "las", "del", "por", "para", "una", "con", "und", "die", "der", "das",
    "den", "ist", "wir", "sie", "les", "des", "une", "est", "pour", "pas", "nous", "vous", "dans",
    "sur",
];

/// The offline classifier's topic keywords, tried in this order after the clauses that name a
/// topic outright (a security report is `security`, legal language `legal`, production down or
/// data loss `outage`, a billing dispute `billing`): the first topic of this list that is
/// configured and has a phrase in the ticket wins; with none, the topic is `other`. Simple on
/// purpose: a topic the model should judge, and the offline classifier only has to be honest
/// about. The order puts the explicit asks first (a feature request that names the Security
/// settings is a feature request) and the how-to phrases last (a question about a failing
/// export is a bug). Tuned on `labels/labels.csv` only, never on the holdout.
pub(super) const TOPICS: &[(&str, &[&str])] = &[
    (
        "feature_request",
        &[
            "feature request",
            "feature idea",
            "would be great",
            "would love",
            "please add",
            "could you add",
            "can you add",
            "roadmap",
            "any plans",
            "any chance of",
            "small idea",
            "suggestion",
            "sugerencia",
            "wish",
        ],
    ),
    (
        "billing",
        &[
            "invoice",
            "charged",
            "refund",
            "billing",
            "billed",
            "payment",
            "subscription",
            "receipt",
            "credit card",
            "pricing",
            "price",
            "seat",
            "overage",
            "vat",
            // de, es, fr
            "rechnung",
            "rechnungen",
            "abo",
            "rückerstattung",
            "factura",
            "reembolso",
            "facture",
            "remboursement",
        ],
    ),
    (
        "security",
        &[
            "vulnerability",
            "xss",
            "exposed",
            "phishing",
            "suspicious login",
            "security",
            "pen test",
            "soc 2",
            "dpa",
            "subprocessor",
        ],
    ),
    (
        "account_access",
        &[
            "password",
            "log in",
            "login",
            "sign in",
            "locked out",
            "2fa",
            "mfa",
            "two factor",
            "sso",
            "saml",
            "cant access",
            "access denied",
            "permission",
            "read only",
            "invite",
            "invited",
            "ownership",
        ],
    ),
    (
        "legal",
        &[
            "gdpr",
            "lawyer",
            "legal",
            "subpoena",
            "terms of service",
            "counsel",
            "contract",
        ],
    ),
    (
        "outage",
        &[
            "outage",
            "is down",
            "are down",
            "not loading",
            "wont load",
            "unavailable",
            "502",
            "503",
        ],
    ),
    (
        "bug",
        &[
            "bug",
            "error",
            "broken",
            "breaks",
            "crash",
            "doesnt work",
            "not working",
            "fails",
            "failing",
            "glitch",
            "regression",
            "times out",
            "wrong",
            "doesnt match",
            "double count",
            "load times",
            "slow",
            "unreliable",
        ],
    ),
    (
        "how_to",
        &[
            "how do i",
            "how can i",
            "how to",
            "where can i",
            "where do i",
            "which",
            "point me to",
            "is there a way",
            "is it possible",
            "get it back",
            "documentation",
            "docs",
            // de, es, fr
            "wo finde",
            "wie",
            "cómo",
            "comment",
        ],
    ),
];

/// Words of a negative tone (besides [`FRUSTRATION`], churn-risk language and a demand for a
/// human now, which are negative too).
pub(super) const NEGATIVE: &[&str] = &[
    "unacceptable",
    "terrible",
    "awful",
    "ridiculous",
    "disappointed",
    "disappointing",
    "annoyed",
    "angry",
    "furious",
    "worst",
    "useless",
    "sick of",
    "enttäuscht",
    "inaceptable",
    "inacceptable",
];

/// Words of a positive tone; a negative one wins over them ("love the product, but this is
/// unacceptable" is negative). A polite `thanks` is not a tone.
pub(super) const POSITIVE: &[&str] = &[
    "love",
    "awesome",
    "amazing",
    "great job",
    "fantastic",
    "appreciate",
    "thrilled",
    "delighted",
    "kudos",
    "happy with",
];
