DROP TABLE ai_counts;
