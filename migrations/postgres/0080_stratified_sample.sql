-- The stratified daily sample and the double review (issue 23).
--
-- Every draw of a day's sample (the first, and each top-up with a larger --n) is recorded with
-- its strata: how many decisions each stratum held among those never offered before (its
-- frame) and how many were drawn. From these, each sampled decision's inclusion probability is
-- computed and kept on its sample row, so the audit can weight its verdict by the inverse.
CREATE TABLE review_draws (
    id            BIGSERIAL   PRIMARY KEY,
    sample_day    TEXT        NOT NULL,
    sample_source TEXT        NOT NULL CHECK (sample_source IN ('all', 'plain', 'pylon', 'api')),
    seed          BIGINT      NOT NULL,
    drawn_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX review_draws_day ON review_draws (sample_day, id);

CREATE TABLE review_draw_strata (
    draw_id    BIGINT  NOT NULL REFERENCES review_draws (id),
    stratum    TEXT    NOT NULL CHECK (stratum IN
                   ('overridden', 'fallback', 'on_fire', 'low_confidence', 'enterprise', 'rest')),
    frame_size INTEGER NOT NULL CHECK (frame_size > 0),
    drawn      INTEGER NOT NULL CHECK (drawn >= 0 AND drawn <= frame_size),
    PRIMARY KEY (draw_id, stratum)
);

-- A sample row's draw, stratum and inclusion probability; NULL on rows drawn before this
-- migration (a uniform draw of the day: the audit computes their probability from the day's
-- decisions). `double_review`: offered to a second reviewer as well.
ALTER TABLE review_samples ADD COLUMN draw_id BIGINT REFERENCES review_draws (id);
ALTER TABLE review_samples ADD COLUMN stratum TEXT CHECK (stratum IN
    ('overridden', 'fallback', 'on_fire', 'low_confidence', 'enterprise', 'rest'));
ALTER TABLE review_samples ADD COLUMN inclusion_probability DOUBLE PRECISION
    CHECK (inclusion_probability > 0 AND inclusion_probability <= 1);
ALTER TABLE review_samples ADD COLUMN double_review BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX review_samples_draw ON review_samples (draw_id);

-- The pass a verdict belongs to: the day's reviewer (`first`), the second reviewer of a
-- decision offered for a double review (`second`), or the word that settles a disagreement
-- between the two (`adjudication`). The last verdict of each pass counts.
ALTER TABLE reviews ADD COLUMN pass TEXT NOT NULL DEFAULT 'first'
    CHECK (pass IN ('first', 'second', 'adjudication'));
CREATE INDEX reviews_decision_pass ON reviews (decision_id, pass, id);
