-- Topic, sentiment and shadow categories on each decision (issue 13, multi-label), and the
-- reviewer's word on each in the review that judged it. NULL on rows from before: not labelled,
-- not judged. `shadow` is a JSON object, shadow category name -> true/false: on a decision,
-- whether the classifier said it applies (only the categories it was asked about); on a review,
-- whether the reviewer says it applies (only the ones judged).
ALTER TABLE decisions ADD COLUMN topic TEXT;
ALTER TABLE decisions ADD COLUMN sentiment TEXT CHECK (sentiment IN ('negative', 'neutral', 'positive'));
ALTER TABLE decisions ADD COLUMN shadow TEXT;
ALTER TABLE reviews ADD COLUMN topic TEXT;
ALTER TABLE reviews ADD COLUMN sentiment TEXT CHECK (sentiment IN ('negative', 'neutral', 'positive'));
ALTER TABLE reviews ADD COLUMN shadow TEXT;
